//! Every builder reads back what it was given (Rust API guideline C-GETTER): each setter's
//! value under the setter's name on the builder's `settings()` view, on both stacks. Every knob
//! is set to a value other than its default and read back, so a setter wired to another
//! knob's field, or a getter reading the wrong one, fails here.
#![cfg(all(feature = "server", feature = "hyper"))]

use std::net::SocketAddr;
use std::time::Duration;

use reqguard::engines::Heap;
use reqguard::http::{demo_routes, Guarded, Ladder, Limits, ListenMode, LoopGroup, ServerBuilder};
use reqguard::tokio_hyper::{self, HyperGroup, HyperServer, Options};
use reqguard::{Config, ServerCore};

fn addr() -> SocketAddr {
    "127.0.0.2:8123".parse().unwrap()
}

fn limits() -> Limits {
    Limits::default()
        .with_max_body(12_345)
        .with_max_connections(77)
        .with_drain_timeout(Duration::from_secs(9))
}

fn ladder() -> Ladder {
    Ladder::default()
        .with_unready(Duration::from_millis(1_500))
        .with_drain_timeout(Duration::from_secs(11))
}

#[test]
fn a_new_server_builder_reads_back_its_defaults() {
    let builder = ServerBuilder::new();
    let settings = builder.settings();
    assert_eq!(settings.addr(), "127.0.0.1:0".parse().unwrap());
    assert_eq!(*settings.limits(), Limits::default());
    assert!(!settings.handle_signals());
    assert_eq!(ServerBuilder::default(), builder);
}

#[test]
fn a_server_builder_reads_back_every_setting() {
    let builder = ServerBuilder::new()
        .addr(addr())
        .limits(limits())
        .handle_signals(true);
    let settings = builder.settings();
    assert_eq!(settings.addr(), addr());
    assert_eq!(*settings.limits(), limits());
    assert!(settings.handle_signals());
    // A later setter replaces the value, and only its own.
    let builder = builder.handle_signals(false);
    assert!(!builder.settings().handle_signals());
    assert_eq!(builder.settings().addr(), addr());
}

#[test]
fn a_new_loop_group_reads_back_its_defaults() {
    let group = LoopGroup::new();
    let settings = group.settings();
    assert_eq!(settings.addr(), "127.0.0.1:0".parse().unwrap());
    assert_eq!(settings.loops(), 1);
    assert_eq!(*settings.limits(), Limits::default());
    assert_eq!(*settings.ladder(), Ladder::default());
    assert_eq!(settings.listen_mode(), ListenMode::ReusePort);
    assert_eq!(LoopGroup::default(), group);
}

#[test]
fn a_loop_group_reads_back_every_setting() {
    let group = LoopGroup::new()
        .addr(addr())
        .loops(3)
        .limits(limits())
        .ladder(ladder())
        .listen_mode(ListenMode::Shared);
    let settings = group.settings();
    assert_eq!(settings.addr(), addr());
    assert_eq!(settings.loops(), 3);
    // As given: the ladder's drain timeout replaces the limits' only at spawn.
    assert_eq!(*settings.limits(), limits());
    assert_eq!(settings.limits().drain_timeout(), Duration::from_secs(9));
    assert_eq!(*settings.ladder(), ladder());
    assert_eq!(settings.listen_mode(), ListenMode::Shared);
}

#[test]
fn a_new_hyper_group_reads_back_its_defaults() {
    let group = HyperGroup::new();
    let settings = group.settings();
    assert_eq!(settings.addr(), "127.0.0.1:0".parse().unwrap());
    assert_eq!(settings.loops(), 1);
    assert_eq!(settings.listen_mode(), ListenMode::ReusePort);
    assert_eq!(HyperGroup::default(), group);
}

#[test]
fn a_hyper_group_reads_back_every_setting() {
    let group = HyperGroup::new()
        .addr(addr())
        .loops(3)
        .listen_mode(ListenMode::Shared);
    let settings = group.settings();
    assert_eq!(settings.addr(), addr());
    assert_eq!(settings.loops(), 3);
    assert_eq!(settings.listen_mode(), ListenMode::Shared);
}

fn hyper_server() -> HyperServer<
    reqguard::engines::Embedded<&'static str>,
    (),
    impl tokio_hyper::Handler<reqguard::engines::Embedded<&'static str>, ()>,
> {
    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    HyperServer::new(core, tokio_hyper::demo_routes())
}

#[test]
fn a_hyper_server_reads_back_its_options() {
    let server = hyper_server();
    assert_eq!(*server.settings(), Options::default());
    let options = Options::default()
        .with_max_connections(77)
        .with_drain_timeout(Duration::from_secs(9));
    let server = server.options(options);
    assert_eq!(*server.settings(), options);
    assert_eq!(server.settings().max_connections(), 77);
}

#[test]
fn a_hyper_servers_debug_counts_its_hooks() {
    let server = hyper_server()
        .after_stop(|| {})
        .after_stop(|| {})
        .after_drain(|| {});
    let debug = format!("{server:?}");
    assert!(debug.contains("after_stop_hooks: 2"), "{debug}");
    assert!(debug.contains("after_drain_hooks: 1"), "{debug}");
}

#[test]
fn guardeds_debug_says_which_hooks_are_set() {
    let config = Config::default();
    // `embedded` sets an after-drain collection, and an after-stop one only under `OnStop`.
    let guarded = Guarded::embedded("server", config);
    let debug = format!("{guarded:?}");
    assert!(debug.contains("after_stop_set: false"), "{debug}");
    assert!(debug.contains("after_drain_set: true"), "{debug}");
    let debug = format!("{:?}", guarded.after_stop(|| {}));
    assert!(debug.contains("after_stop_set: true"), "{debug}");
}

#[test]
fn a_spawned_group_runs_the_loops_its_settings_say_on_both_stacks() {
    let group = LoopGroup::new().loops(2);
    let loops = group.settings().loops();
    let handle = group
        .spawn(
            |_| Guarded::embedded("server", Config::default()),
            demo_routes,
        )
        .unwrap();
    assert_eq!(handle.loops(), loops);
    assert!(handle.stop().unwrap().is_clean());

    let group = HyperGroup::new().loops(2);
    let loops = group.settings().loops();
    let handle = group
        .spawn(|_| {
            let heap = Heap::new();
            let core = ServerCore::embedded(heap.alloc("server"), Config::default());
            HyperServer::new(core, tokio_hyper::demo_routes())
        })
        .unwrap();
    assert_eq!(handle.loops(), loops);
    handle.stopper().stop();
    assert!(handle.wait().unwrap().is_clean());
}

/// The server core reads back the `Config` it was made with (C-GETTER, as the builders'
/// `settings()`): every knob set to a value other than its default, read back through the core
/// itself and through each stack's server that holds it.
#[test]
fn a_server_core_reads_back_its_config_on_both_stacks() {
    use reqguard::{DowngradePolicy, Exhaustion};

    let config = Config::default()
        .with_pool_capacity(37)
        .unwrap()
        .with_exhaustion(Exhaustion::Refuse)
        .with_downgrade(DowngradePolicy::OnStop)
        .with_prewarm(5);
    assert_ne!(config.pool_capacity(), Config::default().pool_capacity());
    assert_ne!(config.exhaustion(), Config::default().exhaustion());
    assert_ne!(config.downgrade(), Config::default().downgrade());
    assert_ne!(config.prewarm(), Config::default().prewarm());

    let heap = Heap::new();
    let core = ServerCore::embedded(heap.alloc("server"), config);
    assert_eq!(*core.config(), config);
    assert_eq!(core.downgrade_policy(), config.downgrade());
    let defaults = ServerCore::embedded(heap.alloc("server"), Config::default());
    assert_eq!(*defaults.config(), Config::default());

    let guarded = Guarded::embedded("server", config);
    assert_eq!(*guarded.core().config(), config);
    let server = HyperServer::new(core, tokio_hyper::demo_routes());
    assert_eq!(*server.core().config(), config);
}
