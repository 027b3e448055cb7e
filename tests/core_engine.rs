//! The generic path a runtime author takes with their own engine: an `Engine` whose upgrade
//! needs a scope (as v8's needs an isolate), `ServerCore::new`, `upgrade_in` and
//! `with_live_in`. Here the wrapper is an `Rc`, so "finalized" means "freed", and the scope
//! counts the upgrades it was used for.

use std::rc::{Rc, Weak};

use reqguard::{Config, DowngradePolicy, Engine, GuardKind, Refusal, RefusalReason, ServerCore};

/// An engine scope: what the callback has in hand when it upgrades (v8's `HandleScope`).
#[derive(Default)]
struct Scope {
    upgrades: u32,
}

struct RcEngine;

impl Engine for RcEngine {
    type Strong = Rc<String>;
    type Weak = Weak<String>;
    type Scope<'s> = Scope;

    fn downgrade(_: &mut Scope, strong: &Rc<String>) -> Weak<String> {
        Rc::downgrade(strong)
    }

    fn upgrade(scope: &mut Scope, weak: &Weak<String>) -> Option<Rc<String>> {
        scope.upgrades += 1;
        weak.upgrade()
    }
}

/// A runtime's request callback, generic over nothing but the proof.
fn on_request(core: &ServerCore<RcEngine>, scope: &mut Scope) -> Result<String, Refusal> {
    core.with_live_in(scope, |live| {
        let bundle = live.admit(|_| Ok(()))?;
        drop(bundle);
        Ok(format!("handled by {}", live.wrapper()))
    })?
}

#[test]
fn a_scoped_engine_refuses_once_its_wrapper_is_freed() {
    let mut scope = Scope::default();
    let wrapper = Rc::new(String::from("server"));
    let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
    let core = ServerCore::<RcEngine>::new(&mut scope, Rc::clone(&wrapper), config);
    drop(wrapper); // the cell's strong handle is now the only one

    assert_eq!(on_request(&core, &mut scope).unwrap(), "handled by server");
    assert_eq!(scope.upgrades, 0, "strong: no engine upgrade needed");

    let drain = core.stop(); // OnStop: the cell drops its strong handle; the Rc is freed
    assert!(drain.is_complete());
    assert!(core.upgrade_in(&mut scope).is_none());
    assert_eq!(scope.upgrades, 1, "the weak upgrade went through the scope");
    let refused = on_request(&core, &mut scope).unwrap_err();
    assert_eq!(refused.reason(), RefusalReason::WrapperFinalized);
    assert_eq!(
        core.ledger().minted(GuardKind::Ticket),
        1,
        "the 503 minted nothing"
    );
    core.ledger().assert_quiescent();
}

#[test]
fn a_scoped_engine_keeps_its_wrapper_while_someone_holds_it() {
    let mut scope = Scope::default();
    let wrapper = Rc::new(String::from("server"));
    let config = Config::default().with_downgrade(DowngradePolicy::OnStop);
    let core = ServerCore::<RcEngine>::new(&mut scope, Rc::clone(&wrapper), config);
    let _drain = core.stop();
    // JS still references the server object: the weak upgrade succeeds, but the server is
    // stopped, so admission is refused as `Stopped` (503), holding nothing.
    let refused = on_request(&core, &mut scope).unwrap_err();
    assert_eq!(refused.reason(), RefusalReason::Stopped);
    assert_eq!(scope.upgrades, 1);
    drop(wrapper);
    assert_eq!(
        on_request(&core, &mut scope).unwrap_err(),
        Refusal::WRAPPER_FINALIZED
    );
    core.ledger().assert_quiescent();
}
