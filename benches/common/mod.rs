//! Shared by the bench binaries: the request context both sides fill, the request payload, and
//! the hand-written server that does the same work the way the PR's code does it (plain
//! counters incremented and decremented explicitly, a free-list pool, an `Rc`'d signal and
//! explicit releases).
//!
//! Each bench binary uses a different part of this module.
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "server")]
pub mod client;
#[cfg(feature = "server")]
pub mod floor;
#[cfg(feature = "server")]
pub mod hand_accounting;

use std::borrow::Borrow;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use reqguard::engines::{Handle, Heap, WeakHandle};
use reqguard::Recycle;

/// The per-request context both servers pool: buffers keep their capacity between requests.
#[derive(Default)]
pub struct Ctx {
    pub url: String,
    pub body: Vec<u8>,
    pub status: u16,
}

impl Recycle for Ctx {
    fn recycle(&mut self) {
        self.url.clear();
        self.body.clear();
        self.status = 0;
    }
}

impl Ctx {
    /// What a runtime does with the context while building the request.
    #[inline]
    pub fn fill(&mut self, req: &Req) {
        self.url.push_str(req.path);
        self.body.extend_from_slice(req.body);
        self.status = 200;
    }
}

/// The request object's payload: what the engine's `Request` would carry (no heap).
#[derive(Clone, Copy, Debug)]
pub struct Req {
    pub method: &'static str,
    pub path: &'static str,
    pub body: &'static [u8],
}

pub const REQ: Req = Req {
    method: "POST",
    path: "/api/items",
    body: b"{\"name\":\"x\"}",
};

/// The server wrapper's value on the embedded heap (both servers use the same engine, so the
/// upgrade costs the same on both sides).
pub type App = &'static str;

// ---------------------------------------------------------------------------------------------
// The hand-written server, PR style.
// ---------------------------------------------------------------------------------------------

/// `AbortSignal` with `pendingActivityRef()`, hand-counted.
#[derive(Default)]
pub struct HandSignal {
    pub aborted: Cell<bool>,
    pub listeners: RefCell<Vec<Box<dyn FnOnce()>>>,
    pub pending_activity: Cell<usize>,
}

/// A free list of boxed contexts with a capacity; spills to the heap past it (Bun's `HiveArray`
/// fallback).
pub struct HandPool<T = Ctx> {
    // Boxed like reqguard's pool: a checkout moves a pointer, and a context never moves.
    #[allow(clippy::vec_box)]
    free: RefCell<Vec<Box<T>>>,
    capacity: usize,
    allocated: Cell<usize>,
}

impl<T: Default + Recycle> HandPool<T> {
    pub fn new(capacity: usize) -> Self {
        HandPool {
            free: RefCell::new(Vec::with_capacity(capacity)),
            capacity,
            allocated: Cell::new(0),
        }
    }

    /// A context and whether it is pooled (false: spilled to the heap).
    #[inline(always)]
    pub fn get(&self) -> (Box<T>, bool) {
        if let Some(ctx) = self.free.borrow_mut().pop() {
            return (ctx, true);
        }
        if self.allocated.get() < self.capacity {
            self.allocated.set(self.allocated.get() + 1);
            return (Box::default(), true);
        }
        (Box::default(), false)
    }

    #[inline(always)]
    pub fn put(&self, mut ctx: Box<T>, pooled: bool) {
        if pooled {
            ctx.recycle();
            self.free.borrow_mut().push(ctx);
        }
    }
}

/// The native server of the PR: `js_value` strong until `stop()`, `pending_requests` a plain
/// counter, contexts from a pool, and a spare list so signals are reused like reqguard's.
pub struct HandServer<T = Ctx> {
    pub js_strong: RefCell<Option<Handle<App>>>,
    pub js_weak: WeakHandle<App>,
    pub pending_requests: Cell<usize>,
    pub stopped: Cell<bool>,
    pub drained: Cell<bool>,
    pub pool: HandPool<T>,
    pub spare_signals: RefCell<Vec<Rc<HandSignal>>>,
    /// `false`: a new `Rc` per request, as Bun does (`AbortSignal.new()`).
    pub recycle_signals: bool,
}

/// The hand-written bundle: what `prepareJsRequestContext` hands the handler.
pub struct HandBundle<T = Ctx, P = Req> {
    pub ctx: Box<T>,
    pub pooled: bool,
    pub signal: Rc<HandSignal>,
    pub request: Option<P>,
}

impl HandServer<Ctx> {
    /// `prepareJsRequestContext`, in the right order: the caller checked the wrapper first.
    #[inline(always)]
    pub fn prepare<R: Borrow<Req>>(&self, req: R) -> Option<HandBundle<Ctx, R>> {
        let (mut ctx, pooled, signal) = self.take_parts()?;
        ctx.fill(req.borrow());
        Some(HandBundle {
            ctx,
            pooled,
            signal,
            request: Some(req), // Request.new()
        })
    }
}

impl<T: Default + Recycle> HandServer<T> {
    pub fn new(heap: &Heap, capacity: usize, recycle_signals: bool) -> Self {
        let strong = heap.alloc("server");
        HandServer {
            js_weak: strong.downgrade(),
            js_strong: RefCell::new(Some(strong)),
            pending_requests: Cell::new(0),
            stopped: Cell::new(false),
            drained: Cell::new(false),
            pool: HandPool::new(capacity),
            spare_signals: RefCell::new(Vec::with_capacity(capacity)),
            recycle_signals,
        }
    }

    /// `tryGetJSValue()`: the strong handle, or an upgrade of the weak one.
    #[inline(always)]
    pub fn try_get_js_value(&self) -> Option<Handle<App>> {
        if let Some(strong) = self.js_strong.borrow().as_ref() {
            return Some(strong.clone());
        }
        self.js_weak.upgrade()
    }

    /// `server.stop()`: downgrade now (the PR's policy); the drain completes when
    /// `pending_requests` reaches 0.
    pub fn stop(&self) {
        self.stopped.set(true);
        drop(self.js_strong.borrow_mut().take());
        if self.pending_requests.get() == 0 {
            self.drained.set(true);
        }
    }

    /// `prepareJsRequestContext` with `build` filling the context and making the request.
    #[inline(always)]
    pub fn prepare_with<P>(&self, build: impl FnOnce(&mut T) -> P) -> Option<HandBundle<T, P>> {
        let (mut ctx, pooled, signal) = self.take_parts()?;
        let request = build(&mut ctx);
        Some(HandBundle {
            ctx,
            pooled,
            signal,
            request: Some(request),
        })
    }

    /// The counts, the pooled context and the signal of `prepareJsRequestContext`.
    #[inline(always)]
    fn take_parts(&self) -> Option<(Box<T>, bool, Rc<HandSignal>)> {
        if self.stopped.get() {
            return None;
        }
        self.pending_requests.set(self.pending_requests.get() + 1); // onPendingRequest()
        let (ctx, pooled) = self.pool.get();
        let signal = if self.recycle_signals {
            self.spare_signals
                .borrow_mut()
                .pop()
                .unwrap_or_else(|| Rc::new(HandSignal::default()))
        } else {
            Rc::new(HandSignal::default())
        };
        signal
            .pending_activity
            .set(signal.pending_activity.get() + 1); // pendingActivityRef()
        Some((ctx, pooled, signal))
    }

    /// The explicit releases at the end of the request (`ctx.deinit()`, `onResponse()`, ...).
    #[inline(always)]
    pub fn finish<P>(&self, bundle: HandBundle<T, P>) {
        let HandBundle {
            ctx,
            pooled,
            signal,
            request: _, // dropped: the engine took it, or it is freed here
        } = bundle;
        signal
            .pending_activity
            .set(signal.pending_activity.get() - 1); // pendingActivityUnref()
        if self.recycle_signals && Rc::strong_count(&signal) == 1 {
            signal.aborted.set(false);
            // (`clear` on an empty list is a call LLVM may leave out of line: the check keeps the
            // baseline's cost independent of how many callers the bench has)
            let mut listeners = signal.listeners.borrow_mut();
            if !listeners.is_empty() {
                listeners.clear();
            }
            drop(listeners);
            self.spare_signals.borrow_mut().push(signal);
        } else {
            drop(signal);
        }
        self.pool.put(ctx, pooled);
        let left = self.pending_requests.get() - 1;
        self.pending_requests.set(left);
        if left == 0 && self.stopped.get() {
            self.drained.set(true); // deinitIfWeCan()
        }
    }
}

/// The reqguard server core both guarded benches use.
pub type Core = reqguard::ServerCore<reqguard::engines::Embedded<App>, Ctx>;

/// The guarded path, as a runtime's `onRequest` callback writes it. `req` is the request
/// object: the bench's 48-byte `Req`, or a pointer to one (`&Req`, the size of an engine
/// handle); each type is its own function under callgrind.
#[inline(never)]
pub fn guarded_request<R: Borrow<Req> + Copy>(core: &Core, req: R) -> u16 {
    let Some(live) = core.upgrade() else {
        return reqguard::Refusal::WRAPPER_FINALIZED.status();
    };
    let bundle = live.admit(|ctx| {
        ctx.fill(req.borrow());
        Ok(req)
    });
    match bundle {
        Ok(mut bundle) => {
            // The engine takes the request; the handler runs with `live.wrapper()` as `this`.
            let owned_by_engine = bundle.hand_off();
            std::hint::black_box((&owned_by_engine, live.wrapper(), bundle.signal()));
            let status = bundle.context().status;
            bundle.complete(); // the answer is written
            status
        }
        Err(refusal) => refusal.status(),
    }
}

/// The same work by hand, PR style: check the wrapper, bump counters, take from the pool,
/// and release each thing explicitly at the end.
#[inline(never)]
pub fn hand_request<R: Borrow<Req> + Copy>(server: &HandServer, req: R) -> u16 {
    let Some(js) = server.try_get_js_value() else {
        return 503;
    };
    let Some(mut bundle) = server.prepare(req) else {
        return 503;
    };
    let owned_by_engine = bundle.request.take().expect("request is made in prepare");
    std::hint::black_box((&owned_by_engine, &js, &bundle.signal));
    let status = bundle.ctx.status;
    server.finish(bundle);
    status
}
