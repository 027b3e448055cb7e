//! qa-client26, round 26: what a hostile client (and a careless operator) sees through both
//! stacks beyond rounds 8 to 25. Answers are read by the strict client (tests/util/strict.rs).
#![cfg(all(feature = "server", feature = "hyper"))]

use crate::local_set;
use crate::quiet;
use crate::util;

use std::io;
use std::time::Duration;

use reqguard::engines::{Embedded, Heap};
use reqguard::http::{demo_routes, Limits, ServerBuilder};
use reqguard::tokio_hyper::{self, HyperGroup, HyperServer, Options};
use reqguard::{Config, ServerCore};

/// How long a builder may take to refuse before it is taken to serve (and the test fails).
const HANG: Duration = Duration::from_secs(20);

/// The knobs both stacks have, each set to a value no server can serve with, and what either
/// stack's error says of it (after `invalid Limits: ` or `invalid Options: `).
const ABSURD: [(&str, &str); 3] = [
    ("max_head 0", "max_head is below MIN_HEAD (64 bytes)"),
    ("max_head 63", "max_head is below MIN_HEAD (64 bytes)"),
    ("idle_timeout 0", "idle_timeout is zero"),
];

fn absurd_limits(knob: &str) -> Limits {
    match knob {
        "max_head 0" => Limits::default().with_max_head(0),
        "max_head 63" => Limits::default().with_max_head(63),
        _ => Limits::default().with_idle_timeout(Duration::ZERO),
    }
}

fn absurd_options(knob: &str) -> Options {
    match knob {
        "max_head 0" => Options::default().with_max_head(0),
        "max_head 63" => Options::default().with_max_head(63),
        _ => Options::default().with_idle_timeout(Duration::ZERO),
    }
}

fn hyper_server(
    options: Options,
) -> HyperServer<Embedded<&'static str>, (), impl tokio_hyper::Handler<Embedded<&'static str>, ()>>
{
    let core = ServerCore::embedded(Heap::new().alloc("server"), Config::default());
    HyperServer::new(core, tokio_hyper::demo_routes()).options(options)
}

/// QA client26-1 (round 25's qa-embed25-3). The hyper adapter's `Options` took `with_max_head(0)`
/// (every request refused `414`/`501`), `with_idle_timeout(0)` (hyper's header read timeout: every
/// connection timed out at once) and `with_probe_body_timeout(0)`, which the mio server's
/// `Limits::validate` refuses; `Options` checked only `max_connections`. Now one set of rules
/// (`src/knobs.rs`) checks both, and both builders refuse the same values with the same words:
/// `InvalidInput` from `ServerBuilder::spawn`, `tokio_hyper::run` and `HyperGroup::spawn`.
#[test]
fn both_builders_refuse_the_same_absurd_knobs_with_the_same_words() {
    for (knob, says) in ABSURD {
        let err = ServerBuilder::new()
            .limits(absurd_limits(knob))
            .spawn(reqguard::http::Unaccounted::new, demo_routes)
            .expect_err(knob);
        assert_eq!(
            err.kind(),
            io::ErrorKind::InvalidInput,
            "mio, {knob}: {err}"
        );
        assert_eq!(err.to_string(), format!("invalid Limits: {says}"), "mio");

        let addr = "127.0.0.1:0".parse().unwrap();
        let options = absurd_options(knob);
        let ran = util::bounded::within(HANG, move || {
            // The stop never comes: a server that serves hangs here, bounded.
            tokio_hyper::run(hyper_server(options), addr, |_| {}, std::future::pending())
                .map(|_| ())
        })
        .unwrap_or_else(|| panic!("hyper's run served with {knob}"));
        let err = ran.expect_err(knob);
        assert_eq!(
            err.kind(),
            io::ErrorKind::InvalidInput,
            "run, {knob}: {err}"
        );
        assert_eq!(err.to_string(), format!("invalid Options: {says}"), "run");

        let spawned = HyperGroup::new()
            .loops(1)
            .spawn(move |_| hyper_server(options));
        let err = spawned.map(|_| ()).expect_err(knob);
        assert_eq!(
            err.kind(),
            io::ErrorKind::InvalidInput,
            "spawn, {knob}: {err}"
        );
        assert!(err.to_string().ends_with(says), "spawn, {knob}: {err}");
    }
    // `serve` returns no `Result`: it panics at once, before it accepts a connection.
    quiet::quiet_panics();
    for (knob, says) in ABSURD {
        let options = absurd_options(knob);
        let panicked = std::panic::catch_unwind(move || {
            local_set::block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                drop(hyper_server(options).serve(listener, std::future::pending()));
            })
        });
        let panic = panicked.expect_err(knob);
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.ends_with(says), "serve, {knob}: {message:?}");
    }
    // hyper's own knob of the mio server's `request_timeout` for a probe's body.
    let options = Options::default().with_probe_body_timeout(Duration::ZERO);
    let err = HyperGroup::new()
        .spawn(move |_| hyper_server(options))
        .map(|_| ())
        .expect_err("probe_body_timeout 0");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    assert!(
        err.to_string().ends_with("probe_body_timeout is zero"),
        "{err}"
    );
}

/// The demo's `serve` refuses a zero request timeout on both stacks before it listens (exit 2),
/// through each stack's own check, with its words (the hyper side's was a copy in the demo,
/// worded "idle_timeout/request_timeout is zero").
#[test]
fn serve_refuses_a_zero_request_timeout_on_both_stacks() {
    let says = [
        ("mio", "invalid Limits: request_timeout is zero"),
        ("hyper", "invalid Options: idle_timeout is zero"),
    ];
    for (stack, said) in says {
        let out = std::process::Command::new(util::serve::BIN)
            .args(["serve", "--addr", "127.0.0.1:0", "--stack", stack])
            .args(["--request-timeout-ms", "0"])
            .output()
            .expect("run reqguard-demo");
        assert_eq!(out.status.code(), Some(2), "{stack}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(said), "{stack}: {stderr}");
        assert!(out.stdout.is_empty(), "{stack}: listened: {out:?}");
    }
}
