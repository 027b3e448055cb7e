//! Hooks a test sets for the user code the core calls (a context's `Default`, `recycle` and
//! `Drop`), so that code can re-enter the server: each hook runs once, on the thread that set it.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::thread::LocalKey;

pub type Hook = Box<dyn FnOnce()>;

/// Where a hook waits for its moment.
pub type HookSlot = LocalKey<RefCell<Option<Hook>>>;

thread_local! {
    pub static ON_DEFAULT: RefCell<Option<Hook>> = const { RefCell::new(None) };
    pub static ON_RECYCLE: RefCell<Option<Hook>> = const { RefCell::new(None) };
    pub static ON_DROP: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

/// Runs (once) the hook set in `slot`, if any.
pub fn run_hook(slot: &'static HookSlot) {
    if let Some(hook) = slot.with(|h| h.borrow_mut().take()) {
        hook();
    }
}

pub fn set_hook(slot: &'static HookSlot, hook: impl FnOnce() + 'static) {
    slot.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
}

/// Drops every hook not run yet.
pub fn clear_hooks() {
    for slot in [&ON_DEFAULT, &ON_RECYCLE, &ON_DROP] {
        slot.with(|h| h.borrow_mut().take());
    }
}
