//! A fake runtime on top of reqguard: the native server struct a runtime author writes, with
//! callbacks named after Bun's `server.zig` (`onRequest`, `onUserRouteRequest`,
//! `onSavedRequest`, `fetch`, `onWebSocketUpgrade`, `onNodeHTTPRequestWithUpgradeCtx`).
//!
//! Each callback uses the API the way a runtime author would: upgrade first (503 when the
//! wrapper is gone), then take the resources, then call the "JS" handler with the wrapper as
//! `this`. The handler's behaviour is chosen by the test ([`Behavior`]). Deferred requests
//! stay in flight until the test finishes them ([`FakeServer::finish`]) or the client aborts
//! ([`FakeServer::on_client_abort`]).
//!
//! Include it with `#[path = "util/runtime.rs"] mod runtime;`.

#![allow(dead_code)] // each test binary uses a different part of the runtime

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use reqguard::engines::{Embedded, Handle, Heap};
use reqguard::{
    AbortReason, AbortSignal, Admitted, Config, Outcome, PendingTicket, Recycle, Refusal,
    RefusalReason, RequestObject, ServerCore,
};

/// The server's JS object (its wrapper).
#[derive(Debug)]
pub(crate) struct JsServer {
    pub(crate) name: &'static str,
}

/// Bun's `RequestContext`: per-request native state, pooled.
#[derive(Debug, Default)]
pub(crate) struct HttpContext {
    pub(crate) url: String,
    pub(crate) body: Vec<u8>,
    pub(crate) websocket: bool,
}

impl Recycle for HttpContext {
    fn recycle(&mut self) {
        self.url.clear();
        self.body.clear();
        self.websocket = false;
    }
}

/// The JS `Request` object the handler receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsRequest {
    pub(crate) method: &'static str,
    pub(crate) url: String,
}

/// An incoming request as the native HTTP layer parsed it.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) method: &'static str,
    pub(crate) url: &'static str,
    pub(crate) body: Vec<u8>,
}

impl Req {
    pub(crate) fn get(url: &'static str) -> Self {
        Req {
            method: "GET",
            url,
            body: Vec::new(),
        }
    }

    pub(crate) fn post(url: &'static str, body: usize) -> Self {
        Req {
            method: "POST",
            url,
            body: vec![b'x'; body],
        }
    }
}

/// What the native layer writes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// `Connection: close`.
    pub(crate) close: bool,
    /// Why the request was refused, when it was.
    pub(crate) refused: Option<RefusalReason>,
    /// The `this` the handler saw (the wrapper's name), when it ran.
    pub(crate) this: Option<&'static str>,
    /// The id of a deferred request, to finish or abort it later.
    pub(crate) deferred: Option<usize>,
}

impl Response {
    fn ok(status: u16, this: &'static str) -> Self {
        Response {
            status,
            close: false,
            refused: None,
            this: Some(this),
            deferred: None,
        }
    }

    fn refused(refusal: Refusal) -> Self {
        Response {
            status: refusal.status(),
            close: refusal.closes_connection(),
            refused: Some(refusal.reason()),
            this: None,
            deferred: None,
        }
    }
}

/// What the JS handler does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behavior {
    /// Answers at once with this status.
    Respond(u16),
    /// Returns a pending promise: the request stays in flight until finished or aborted.
    Defer,
    /// Panics (a native bug, or a JS exception rethrown as a panic).
    Panic,
    /// Throws: the runtime answers 500 and aborts the request's signal.
    Throw,
}

/// A request the server holds while its promise is pending.
pub(crate) struct InFlight {
    pub(crate) id: usize,
    pub(crate) js_request: Handle<JsRequest>,
    /// Its request object already handed off to the engine (`js_request`).
    pub(crate) bundle: Admitted<HttpContext, JsRequest>,
}

/// A request saved for later (Bun's bake DevServer defers requests until a bundle is ready).
/// It already owns its ticket: the server counted it when it arrived.
pub(crate) struct SavedRequest {
    pub(crate) req: Req,
    pub(crate) ticket: PendingTicket,
}

/// The native server struct of a runtime built on reqguard.
pub(crate) struct FakeServer {
    pub(crate) heap: Heap,
    pub(crate) core: ServerCore<Embedded<JsServer>, HttpContext>,
    pub(crate) behavior: Cell<Behavior>,
    /// Largest body accepted (413 above).
    pub(crate) max_body: usize,
    /// User routes (`Bun.serve({ routes })`): path and behaviour.
    pub(crate) routes: Vec<(&'static str, Behavior)>,
    pub(crate) in_flight: RefCell<Vec<InFlight>>,
    /// How many times abort listeners registered by handlers ran.
    pub(crate) abort_listener_runs: Rc<Cell<u32>>,
    /// How many times the handler ran.
    pub(crate) handler_runs: Cell<u32>,
    /// The signal of the last request dispatched, as user code that keeps it would hold it.
    pub(crate) last_signal: RefCell<Option<AbortSignal>>,
    next_id: Cell<usize>,
}

impl FakeServer {
    pub(crate) fn new(config: Config) -> Self {
        let heap = Heap::new();
        let core = ServerCore::embedded_with_context::<HttpContext>(
            heap.alloc(JsServer { name: "server" }),
            config,
        );
        FakeServer {
            heap,
            core,
            behavior: Cell::new(Behavior::Respond(200)),
            max_body: 1024,
            routes: vec![("/api", Behavior::Respond(201)), ("/slow", Behavior::Defer)],
            in_flight: RefCell::new(Vec::new()),
            abort_listener_runs: Rc::new(Cell::new(0)),
            handler_runs: Cell::new(0),
            last_signal: RefCell::new(None),
            next_id: Cell::new(0),
        }
    }

    /// Takes the bundle for `req`: ticket, pooled context, signal ref, request object.
    fn admit(
        &self,
        live: &reqguard::Live<'_, Embedded<JsServer>, HttpContext>,
        req: &Req,
    ) -> Result<Admitted<HttpContext, JsRequest>, Refusal> {
        let max_body = self.max_body;
        live.admit(|ctx| {
            if req.body.len() > max_body {
                return Err(Refusal::new(RefusalReason::PayloadTooLarge {
                    limit: max_body,
                }));
            }
            if req.url.contains("engine-error") {
                return Err(Refusal::new(RefusalReason::Engine("Request.new threw")));
            }
            ctx.url.push_str(req.url);
            ctx.body.extend_from_slice(&req.body);
            Ok(JsRequest {
                method: req.method,
                url: req.url.to_string(),
            })
        })
    }

    /// Calls the JS handler with `this` and the request, then ends or keeps the request.
    fn dispatch(
        &self,
        this: &Handle<JsServer>,
        mut bundle: Admitted<HttpContext, JsRequest>,
        behavior: Behavior,
    ) -> Response {
        self.handler_runs.set(self.handler_runs.get() + 1);
        *self.last_signal.borrow_mut() = Some(bundle.signal().clone());
        // request.toJS(): the engine owns the request from here on.
        let request = bundle.hand_off().expect("admitted with its request");
        let js_request = self.heap.alloc(request);
        match behavior {
            Behavior::Respond(status) => {
                bundle.complete(); // answered: the signal never fires
                Response::ok(status, this.name)
            }
            // Unwinding drops the bundle: outcome `Dropped`, its signal fires.
            Behavior::Panic => panic!("handler panicked on {}", js_request.url),
            Behavior::Throw => {
                drop(bundle); // the handler failed: `Dropped`, its signal fires
                Response {
                    status: 500,
                    close: false,
                    refused: None,
                    this: Some(this.name),
                    deferred: None,
                }
            }
            Behavior::Defer => {
                let runs = Rc::clone(&self.abort_listener_runs);
                let registered = bundle.signal().on_abort(move |_| runs.set(runs.get() + 1));
                assert!(registered);
                let id = self.next_id.get();
                self.next_id.set(id + 1);
                self.in_flight.borrow_mut().push(InFlight {
                    id,
                    js_request,
                    bundle,
                });
                let mut response = Response::ok(0, this.name);
                response.deferred = Some(id);
                response
            }
        }
    }

    fn answer(result: Result<Response, Refusal>) -> Response {
        result.unwrap_or_else(Response::refused)
    }

    /// `onRequest`: the `fetch` handler of `Bun.serve`.
    pub(crate) fn on_request(&self, req: Req) -> Response {
        Self::answer((|| {
            let live = self.core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;
            let bundle = self.admit(&live, &req)?;
            Ok(self.dispatch(live.wrapper(), bundle, self.behavior.get()))
        })())
    }

    /// `onUserRouteRequest`: a route from `Bun.serve({ routes })`.
    pub(crate) fn on_user_route_request(&self, route: usize, req: Req) -> Response {
        Self::answer((|| {
            let live = self.core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;
            let (_, behavior) = self.routes[route];
            let bundle = self.admit(&live, &req)?;
            Ok(self.dispatch(live.wrapper(), bundle, behavior))
        })())
    }

    /// Saves a request for later; it owns its ticket from now on.
    pub(crate) fn save_request(&self, req: Req) -> Result<SavedRequest, Refusal> {
        let live = self.core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;
        Ok(SavedRequest {
            ticket: live.ticket()?,
            req,
        })
    }

    /// `onSavedRequest`: a saved request comes back. The check comes first; a saved request
    /// whose server is gone gives its ticket back through `Refusal::consume`.
    pub(crate) fn on_saved_request(&self, saved: SavedRequest) -> Response {
        let Some(live) = self.core.upgrade() else {
            return Response::refused(Refusal::WRAPPER_FINALIZED.consume(saved));
        };
        Self::answer((|| {
            if saved.req.body.len() > self.max_body {
                let refusal = Refusal::new(RefusalReason::PayloadTooLarge {
                    limit: self.max_body,
                });
                return Err(refusal.consume(saved));
            }
            // prepareJsRequestContext with the ticket the request owns.
            let bundle = live.admit_with(saved.ticket, |ctx| {
                ctx.url.push_str(saved.req.url);
                Ok(JsRequest {
                    method: saved.req.method,
                    url: saved.req.url.to_string(),
                })
            })?;
            Ok(self.dispatch(live.wrapper(), bundle, self.behavior.get()))
        })())
    }

    /// `server.fetch(request)` called from JS: upgrade first, then `Request.new(existing)`.
    /// `Err` is the rejected promise.
    pub(crate) fn fetch(&self, existing: &JsRequest) -> Result<Handle<JsRequest>, Refusal> {
        let live = self.core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;
        let request = live.request(existing.clone())?;
        if self.behavior.get() == Behavior::Throw {
            // The handler threw before taking the request: it is freed, never handed off.
            drop(request);
            return Err(Refusal::new(RefusalReason::Engine("fetch handler threw")));
        }
        self.handler_runs.set(self.handler_runs.get() + 1);
        Ok(self.heap.alloc(RequestObject::hand_off(request)))
    }

    /// `onWebSocketUpgrade`: the handler may call `server.upgrade(req)`; 101 ends the request.
    pub(crate) fn on_websocket_upgrade(&self, req: Req) -> Response {
        Self::answer((|| {
            let live = self.core.upgrade().ok_or(Refusal::WRAPPER_FINALIZED)?;
            let mut bundle = self.admit(&live, &req)?;
            bundle.context_mut().websocket = true;
            let behavior = match self.behavior.get() {
                Behavior::Respond(200) => Behavior::Respond(101),
                other => other,
            };
            Ok(self.dispatch(live.wrapper(), bundle, behavior))
        })())
    }

    /// `onNodeHTTPRequestWithUpgradeCtx`, the review's ninth call site: the check (with the
    /// callback form of the proof) comes before `pending_requests += 1`.
    pub(crate) fn on_node_http_request_with_upgrade_ctx(
        &self,
        req: Req,
        upgrade: bool,
    ) -> Response {
        let result = self.core.with_live(|live| {
            let mut bundle = self.admit(&live, &req)?;
            bundle.context_mut().websocket = upgrade;
            Ok(self.dispatch(live.wrapper(), bundle, self.behavior.get()))
        });
        Self::answer(result.and_then(|r| r))
    }

    /// The handler's promise resolves: the deferred request completes.
    pub(crate) fn finish(&self, id: usize) -> bool {
        self.end(id, Outcome::Completed)
    }

    /// Ends the deferred request `id` with `outcome`; false if it is not in flight.
    pub(crate) fn end(&self, id: usize, outcome: Outcome) -> bool {
        let mut in_flight = self.in_flight.borrow_mut();
        let Some(i) = in_flight.iter().position(|r| r.id == id) else {
            return false;
        };
        let done = in_flight.swap_remove(i);
        drop(in_flight);
        done.bundle.end(outcome);
        true
    }

    /// Completes every deferred request.
    pub(crate) fn finish_all(&self) {
        let all = std::mem::take(&mut *self.in_flight.borrow_mut());
        for done in all {
            done.bundle.complete();
        }
    }

    /// The client closed its connection: the request ends as `ClientGone` (its signal fires).
    pub(crate) fn on_client_abort(&self, id: usize) -> bool {
        let signal = {
            let in_flight = self.in_flight.borrow();
            match in_flight.iter().find(|r| r.id == id) {
                Some(r) => r.bundle.signal().clone(),
                None => return false,
            }
        };
        let ended = self.end(id, Outcome::ClientGone);
        // A second close event (the socket's error and close callbacks both fire).
        assert!(!signal.abort(AbortReason::ClientDisconnected));
        ended
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.borrow().len()
    }
}
