//! SIGINT and SIGTERM as loop events, for a server that owns its process (serve mode).
//!
//! On Unix, signal-hook writes one byte per signal to a socket pair that the loop polls like
//! any other source, so a signal wakes the loop without a timer. Elsewhere (Windows) installing
//! fails with [`io::ErrorKind::Unsupported`]: stop the server through its
//! [`StopHandle`](super::StopHandle) instead.

use std::io;
#[cfg(unix)]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(unix)]
use std::sync::{Arc, Mutex, OnceLock};

use mio::{Registry, Token};

/// The installed handlers; they are removed when this drops, and once no server's are left,
/// SIGINT and SIGTERM end the process again ([`Unhandled`]).
pub(crate) struct Signals {
    #[cfg(unix)]
    pipe: mio::net::UnixStream,
    #[cfg(unix)]
    ids: Vec<signal_hook::SigId>,
}

/// SIGINT and SIGTERM when no server handles them: signal-hook keeps its own handler once it has
/// installed one, and with no action left that handler does nothing, so a process whose server
/// had handled them ignored both for good (only SIGKILL ended it: QA embed18-5). An action of
/// signal-hook's, registered once and before any server's, runs the signal's default action
/// (terminate) while `unhandled` is set: while no server's handlers are installed.
#[cfg(unix)]
struct Unhandled {
    /// Servers whose handlers are installed.
    servers: Mutex<usize>,
    unhandled: Arc<AtomicBool>,
}

#[cfg(unix)]
impl Unhandled {
    /// The process's, its default actions registered on the first call (an error then is
    /// returned, and the next install tries again).
    fn get() -> io::Result<&'static Unhandled> {
        static UNHANDLED: OnceLock<Unhandled> = OnceLock::new();
        static REGISTERED: Mutex<bool> = Mutex::new(false);
        let this = UNHANDLED.get_or_init(|| Unhandled {
            servers: Mutex::new(0),
            unhandled: Arc::new(AtomicBool::new(false)),
        });
        let mut registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
        if !*registered {
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                let unhandled = Arc::clone(&this.unhandled);
                signal_hook::flag::register_conditional_default(signal, unhandled)?;
            }
            *registered = true;
        }
        Ok(this)
    }

    /// One more server handles the signals (or one fewer: `by` -1).
    fn count(&self, by: isize) {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        *servers = servers.saturating_add_signed(by);
        self.unhandled.store(*servers == 0, Ordering::SeqCst);
    }
}

#[cfg(unix)]
impl Signals {
    /// Registers SIGINT and SIGTERM; the pipe is readable under `token` after each.
    pub(crate) fn install(registry: &Registry, token: Token) -> io::Result<Self> {
        let unhandled = Unhandled::get()?;
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut pipe = mio::net::UnixStream::from_std(read);
        registry.register(&mut pipe, token, mio::Interest::READABLE)?;
        // Counted before its actions: a failed install drops it, which counts it out again.
        unhandled.count(1);
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
        if let Ok(unhandled) = Unhandled::get() {
            unhandled.count(-1);
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
