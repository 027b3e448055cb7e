//! SIGINT and SIGTERM as loop events, for a server that owns its process (serve mode).
//!
//! On Unix, signal-hook writes one byte per signal to a socket pair that the loop polls like
//! any other source, so a signal wakes the loop without a timer. Elsewhere (Windows) installing
//! fails with [`io::ErrorKind::Unsupported`]: stop the server through its
//! [`StopHandle`](super::StopHandle) instead.

use std::io;

use mio::{Registry, Token};

/// The installed handlers; they are removed when this drops.
pub(crate) struct Signals {
    #[cfg(unix)]
    pipe: mio::net::UnixStream,
    #[cfg(unix)]
    ids: Vec<signal_hook::SigId>,
}

#[cfg(unix)]
impl Signals {
    /// Registers SIGINT and SIGTERM; the pipe is readable under `token` after each.
    pub(crate) fn install(registry: &Registry, token: Token) -> io::Result<Self> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut pipe = mio::net::UnixStream::from_std(read);
        registry.register(&mut pipe, token, mio::Interest::READABLE)?;
        let mut signals = Signals {
            pipe,
            ids: Vec::new(),
        };
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let id = signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
            signals.ids.push(id);
        }
        Ok(signals)
    }

    /// How many signals arrived since the last call (each wrote one byte).
    pub(crate) fn take(&mut self) -> usize {
        use std::io::Read;
        let mut buf = [0u8; 16];
        let mut received = 0;
        while let Ok(n @ 1..) = self.pipe.read(&mut buf) {
            received += n;
        }
        received
    }
}

#[cfg(unix)]
impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(not(unix))]
impl Signals {
    /// Signal handling is Unix-only.
    pub(crate) fn install(_: &Registry, _: Token) -> io::Result<Self> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SIGINT/SIGTERM handling is Unix-only; stop the server with a StopHandle",
        ))
    }

    /// Never called: there is no `Signals` value off Unix.
    pub(crate) fn take(&mut self) -> usize {
        0
    }
}
