//! qa-client11, round 11: both stacks as a hostile client sees them, through `reqguard-demo
//! serve` (the process a user runs). Each test fails on the main it was written against and
//! passes after its fix; answers are read by the strict client (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

mod util;

use std::io::Read;
use std::net::Shutdown;
use std::thread;
use std::time::Duration;

use util::strict::StrictClient;

const STACKS: [&str; 2] = ["--stack mio", "--stack hyper"];

/// RFC 9112 §9.6: a client may half-close (shut its write side) once it has sent its requests
/// and read the answers on. A client that pipelined eight 512 KiB uploads and half-closed got,
/// on the hyper stack, seven answers and the eighth cut short (328,806 of 524,288 bytes) then a
/// FIN, while the exit JSON counted 8 `served`, *completed*: hyper, with `half_close` off (as
/// the adapter runs it, so that a client gone mid-request aborts it), reads the socket while it
/// writes its last answer and takes the end of input for a client gone
/// (`mid_message_detect_eof`: "unexpected EOF on busy connection"), dropping what it had not
/// written yet. The adapter now holds the end of input back while the socket has not taken
/// what hyper wrote (the writable event wakes hyper; the send rate rule still bounds a client
/// that reads nothing). The mio stack wrote every answer whole already.
#[test]
fn a_client_that_half_closes_after_pipelined_uploads_reads_every_answer_whole_on_both_stacks() {
    const UPLOADS: usize = 8;
    const SIZE: usize = 512 * 1024;
    for stack in STACKS {
        let serve = util::serve::Serve::start("", stack);
        let mut client = StrictClient::connect(serve.addr);
        let bodies: Vec<Vec<u8>> = (0..UPLOADS)
            .map(|i| {
                (0..SIZE)
                    .map(|j| b'a' + ((i * 7 + j / 1000) % 26) as u8)
                    .collect()
            })
            .collect();
        let mut requests = Vec::new();
        for body in &bodies {
            requests.extend_from_slice(
                format!("POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {SIZE}\r\n\r\n")
                    .as_bytes(),
            );
            requests.extend_from_slice(body);
        }
        // Sent from another thread: the server answers while the uploads arrive, and the
        // socket buffers cannot hold all eight answers while this one does not read.
        let mut writer = client.reader_mut().get_ref().try_clone().unwrap();
        let sender = thread::spawn(move || {
            std::io::Write::write_all(&mut writer, &requests).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        // Reads late: the last answers wait in the server while its input has ended.
        thread::sleep(Duration::from_millis(300));
        for (i, body) in bodies.iter().enumerate() {
            let answer = client.answer("POST");
            assert_eq!(answer.status, 200, "{stack}: answer {i}");
            assert!(answer.body == *body, "{stack}: answer {i}'s body");
        }
        sender.join().unwrap();
        let mut rest = Vec::new();
        let _ = client.reader_mut().read_to_end(&mut rest);
        assert!(rest.is_empty(), "{stack}: bytes after the last answer");
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        assert_eq!(util::serve::field(&json, "served"), 8.0, "{stack}: {json}");
        assert_eq!(util::serve::field(&json, "leaked"), 0.0, "{stack}: {json}");
    }
}

/// An HTTP/2 connection preface (`PRI * HTTP/2.0`, what a prior-knowledge h2c client such as
/// `h2load` or `curl --http2-prior-knowledge` sends first) sent to an HTTP/1.1 server: the mio
/// stack answers `505` + close and counts it `rejected`; hyper closes without a word, and the
/// adapter counted that close `rejected` too (it counts hyper's parse errors as the `400`/`431`
/// hyper writes), a rejection no client saw. The exit JSON now counts only what was answered.
#[test]
fn an_http2_preface_is_counted_rejected_only_where_it_is_answered() {
    for stack in STACKS {
        let serve = util::serve::Serve::start("", stack);
        let mut client = StrictClient::connect(serve.addr);
        client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let mut seen = Vec::new();
        let _ = client.reader_mut().read_to_end(&mut seen);
        let answered = !seen.is_empty();
        if answered {
            assert!(
                seen.starts_with(b"HTTP/1.1 505 "),
                "{stack}: {:?}",
                String::from_utf8_lossy(&seen)
            );
        }
        let (json, ok) = serve.signal_and_wait("TERM");
        assert!(ok, "{stack}: {json}");
        let rejected = util::serve::field(&json, "rejected");
        assert_eq!(rejected, f64::from(u8::from(answered)), "{stack}: {json}");
    }
}
