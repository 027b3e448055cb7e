//! An engine whose strong handle runs the embedder's code: its `Clone` a callback set with
//! [`on_next_clone`] (an engine that does bookkeeping on every new reference, which may call
//! back into the server), its `Drop` a panic when armed with [`panic_on_next_drop`] (a
//! finalizer that throws).
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use reqguard::{Config, DowngradePolicy, Engine, ServerCore};

thread_local! {
    static ON_CLONE: RefCell<Option<Box<dyn Fn()>>> = RefCell::new(None);
    static PANIC_ON_DROP: Cell<bool> = const { Cell::new(false) };
}

/// A strong handle whose `Clone` runs the callback of [`on_next_clone`], once, and whose
/// `Drop` panics once after [`panic_on_next_drop`].
pub(crate) struct Noisy(pub(crate) Rc<()>);

impl Clone for Noisy {
    fn clone(&self) -> Self {
        let hook = ON_CLONE.with(|h| h.borrow_mut().take());
        if let Some(hook) = hook {
            hook();
        }
        Noisy(Rc::clone(&self.0))
    }
}

impl Drop for Noisy {
    fn drop(&mut self) {
        if PANIC_ON_DROP.with(|armed| armed.replace(false)) {
            panic!("a strong handle's drop panics");
        }
    }
}

pub(crate) struct NoisyEngine;

impl Engine for NoisyEngine {
    type Strong = Noisy;
    type Weak = std::rc::Weak<()>;
    type Scope<'s> = ();

    fn downgrade(_: &mut (), strong: &Noisy) -> Self::Weak {
        Rc::downgrade(&strong.0)
    }

    fn upgrade(_: &mut (), weak: &Self::Weak) -> Option<Noisy> {
        weak.upgrade().map(Noisy)
    }
}

/// The next clone of a [`Noisy`] runs `hook` first.
pub(crate) fn on_next_clone(hook: impl Fn() + 'static) {
    ON_CLONE.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
}

/// The next drop of a [`Noisy`] panics.
pub(crate) fn panic_on_next_drop() {
    PANIC_ON_DROP.with(|armed| armed.set(true));
}

/// Disarms both (a test's end).
pub(crate) fn disarm() {
    ON_CLONE.with(|h| h.borrow_mut().take());
    PANIC_ON_DROP.with(|armed| armed.set(false));
}

/// A server core under `policy` around a wrapper of [`NoisyEngine`]'s, and a weak handle that
/// tells whether the wrapper is still alive.
pub(crate) fn noisy_core(
    policy: DowngradePolicy,
) -> (Rc<ServerCore<NoisyEngine>>, std::rc::Weak<()>) {
    let wrapper = Rc::new(());
    let weak = Rc::downgrade(&wrapper);
    let core = ServerCore::new(
        &mut (),
        Noisy(wrapper),
        Config::default().with_downgrade(policy),
    );
    (Rc::new(core), weak)
}
