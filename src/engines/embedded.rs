//! The embedded engine: a tiny heap with rooted handles and a deterministic collector.
//!
//! # Invariants
//!
//! 1. An object's `roots` equals the number of live [`Handle`]s to it.
//! 2. The heap's object list holds every object not yet finalized; it is the only owner of an
//!    object with no root, so when [`Heap::collect`] removes it, its weak handles fail (marked
//!    collected before any finalizer runs, so no finalizer can upgrade one).
//! 3. Each object's finalizers run once, when it is collected, each on its own: one that panics
//!    (user code) is caught and counted, and skips neither the others nor the collection's
//!    bookkeeping; freeing a collected object (its value's `Drop`, user code too) is caught the
//!    same way.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::rc::{self, Rc};

use crate::callback::call_caught;
use crate::pool::Recycle;
use crate::wrapper::Engine;
use crate::{Config, ServerCore};

type Finalizer = Box<dyn FnOnce()>;

struct Object<T> {
    roots: Cell<usize>,
    /// Collected: its weak handles fail from now on, even while its finalizers run (as a JS
    /// engine clears weak references before it runs finalizers).
    collected: Cell<bool>,
    finalizers: RefCell<Vec<Finalizer>>,
    value: T,
}

trait Collectable {
    fn is_rooted(&self) -> bool;
    fn mark_collected(&self);
    /// Runs the finalizers, each on its own; returns how many panicked.
    fn finalize(&self) -> u64;
}

impl<T> Collectable for Object<T> {
    fn is_rooted(&self) -> bool {
        self.roots.get() > 0
    }

    fn mark_collected(&self) {
        self.collected.set(true);
    }

    fn finalize(&self) -> u64 {
        let finalizers = std::mem::take(&mut *self.finalizers.borrow_mut());
        let mut panicked = 0;
        for finalizer in finalizers {
            panicked += u64::from(call_caught(finalizer));
        }
        panicked
    }
}

/// An embedded garbage-collected heap, the default engine.
///
/// Objects stay alive while a [`Handle`] roots them; a [`WeakHandle`] upgrades until
/// [`collect`](Heap::collect) finalizes the object, exactly as a JS engine's weak handle does
/// between the last strong reference going away and the next collection. Tests use it to reach
/// the finalized path for real (the PR's own regression test never did: it kept a strong
/// reference). Native servers with no JS engine can use it to hold their app state.
///
/// # Examples
///
/// ```
/// use reqguard::engines::Heap;
///
/// let heap = Heap::new();
/// let strong = heap.alloc(String::from("server"));
/// let weak = strong.downgrade();
/// drop(strong);
/// assert!(weak.upgrade().is_some()); // unrooted but not yet collected
/// assert_eq!(heap.collect(), 1);
/// assert!(weak.upgrade().is_none());
/// ```
#[derive(Clone, Default)]
pub struct Heap {
    objects: Rc<RefCell<Vec<Rc<dyn Collectable>>>>,
    finalized: Rc<Cell<u64>>,
    finalizer_panics: Rc<Cell<u64>>,
}

impl Heap {
    /// An empty heap.
    pub fn new() -> Self {
        Heap::default()
    }

    /// Allocates `value` and returns a handle rooting it.
    pub fn alloc<T: 'static>(&self, value: T) -> Handle<T> {
        let object = Rc::new(Object {
            roots: Cell::new(1),
            collected: Cell::new(false),
            finalizers: RefCell::new(Vec::new()),
            value,
        });
        self.objects
            .borrow_mut()
            .push(Rc::clone(&object) as Rc<dyn Collectable>);
        Handle { object }
    }

    /// Finalizes every object no handle roots, runs their finalizers, and returns how many.
    ///
    /// Repeats until nothing more is unrooted, so objects kept alive only by finalized objects
    /// go in the same call. Finalizers are user code: each runs on its own, and one that panics
    /// is caught and counted ([`finalizer_panics`](Heap::finalizer_panics)) without skipping the
    /// others (as is a collected value's `Drop` that panics).
    ///
    /// Each round looks at every object left in the heap (an object does not know what roots
    /// it), and a round frees what is unrooted as it begins: a chain of `n` objects, each
    /// rooted only by a handle in the value of the one before it, takes `n` rounds, so `n²/2`
    /// looks in all (a linked list of 20,000 objects: 200 million). Keep long chains of handles
    /// out of the heap (QA embed31-2, documented).
    pub fn collect(&self) -> usize {
        let mut total = 0;
        loop {
            let dead: Vec<_> = {
                let mut objects = self.objects.borrow_mut();
                let (dead, live) = objects.drain(..).partition(|o| !o.is_rooted());
                *objects = live;
                dead
            };
            if dead.is_empty() {
                break;
            }
            total += dead.len();
            self.finalized.set(self.finalized.get() + dead.len() as u64);
            // Every weak handle to them fails before any finalizer runs: a finalizer (user
            // code) must not bring back an object collected with it.
            for object in &dead {
                object.mark_collected();
            }
            let mut panicked = 0;
            for object in &dead {
                panicked += object.finalize();
            }
            // Freed one by one (may unroot more objects: loop again).
            for object in dead {
                panicked += u64::from(call_caught(move || drop(object)));
            }
            self.finalizer_panics
                .set(self.finalizer_panics.get() + panicked);
        }
        total
    }

    /// Finalizers (and collected values' `Drop`s) that panicked in [`collect`](Heap::collect),
    /// caught.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::engines::Heap;
    ///
    /// let heap = Heap::new();
    /// let object = heap.alloc(());
    /// object.on_finalize(|| panic!("a finalizer panics"));
    /// drop(object);
    /// assert_eq!(heap.collect(), 1);
    /// assert_eq!(heap.finalizer_panics(), 1);
    /// ```
    pub fn finalizer_panics(&self) -> u64 {
        self.finalizer_panics.get()
    }

    /// Objects not yet finalized.
    pub fn live_objects(&self) -> usize {
        self.objects.borrow().len()
    }

    /// Objects finalized so far.
    pub fn finalized(&self) -> u64 {
        self.finalized.get()
    }
}

impl fmt::Debug for Heap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heap")
            .field("live_objects", &self.live_objects())
            .field("finalized", &self.finalized())
            .finish()
    }
}

/// A strong (rooting) handle to an object on a [`Heap`]; derefs to the value.
///
/// Cloning adds a root; dropping removes one.
pub struct Handle<T> {
    object: Rc<Object<T>>,
}

impl<T> Handle<T> {
    /// A weak handle to the same object.
    pub fn downgrade(&self) -> WeakHandle<T> {
        WeakHandle {
            object: Rc::downgrade(&self.object),
        }
    }

    /// Runs `finalizer` when the object is collected (`FinalizationRegistry`).
    ///
    /// It runs caught: a finalizer that panics is counted ([`Heap::finalizer_panics`]) and
    /// the collection goes on. One thing no catch can save: a finalizer that panics while it
    /// owns a capture whose `Drop` panics too aborts the process (Rust's rule for a panic
    /// while unwinding: the capture is dropped by the unwinding `FnOnce`). Keep such values
    /// behind a reference (an `Rc` whose last handle is dropped elsewhere), or catch inside.
    pub fn on_finalize(&self, finalizer: impl FnOnce() + 'static) {
        self.object
            .finalizers
            .borrow_mut()
            .push(Box::new(finalizer));
    }

    /// How many handles root the object.
    pub fn roots(&self) -> usize {
        self.object.roots.get()
    }
}

impl<T> Clone for Handle<T> {
    /// Adds a root.
    fn clone(&self) -> Self {
        self.object.roots.set(self.object.roots.get() + 1);
        Handle {
            object: Rc::clone(&self.object),
        }
    }
}

impl<T> Drop for Handle<T> {
    /// Removes a root; the object is finalized at the next [`Heap::collect`] if none is left.
    fn drop(&mut self) {
        self.object.roots.set(self.object.roots.get() - 1);
    }
}

impl<T> Deref for Handle<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.object.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Handle").field(&self.object.value).finish()
    }
}

/// A weak handle to an object on a [`Heap`]: upgrades until the object is collected.
pub struct WeakHandle<T> {
    object: rc::Weak<Object<T>>,
}

impl<T> WeakHandle<T> {
    /// A rooting handle, or `None` if the object has been collected (from the moment a
    /// collection takes it, its finalizers' run included).
    pub fn upgrade(&self) -> Option<Handle<T>> {
        let object = self.object.upgrade()?;
        if object.collected.get() {
            return None;
        }
        object.roots.set(object.roots.get() + 1);
        Some(Handle { object })
    }

    /// Whether the object has been collected.
    pub fn is_finalized(&self) -> bool {
        self.object
            .upgrade()
            .is_none_or(|object| object.collected.get())
    }
}

impl<T> Clone for WeakHandle<T> {
    fn clone(&self) -> Self {
        WeakHandle {
            object: self.object.clone(),
        }
    }
}

impl<T> fmt::Debug for WeakHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakHandle")
            .field("finalized", &self.is_finalized())
            .finish()
    }
}

/// The embedded engine (marker type): a wrapper of type `T` on a [`Heap`].
pub struct Embedded<T>(PhantomData<fn() -> T>);

impl<T> fmt::Debug for Embedded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Embedded")
    }
}

impl<T: 'static> Engine for Embedded<T> {
    type Strong = Handle<T>;
    type Weak = WeakHandle<T>;
    type Scope<'s> = ();

    /// A clone is a root count and an `Rc`: no code of the embedder's runs.
    const STRONG_CLONE_MAY_REENTER: bool = false;

    fn downgrade(_: &mut (), strong: &Handle<T>) -> WeakHandle<T> {
        strong.downgrade()
    }

    fn upgrade(_: &mut (), weak: &WeakHandle<T>) -> Option<Handle<T>> {
        weak.upgrade()
    }
}

impl<T: 'static> ServerCore<Embedded<T>> {
    /// A server core whose wrapper lives on an embedded [`Heap`], with no per-request context.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded(heap.alloc("server"), Config::default());
    /// assert!(core.upgrade().is_some());
    /// ```
    pub fn embedded(wrapper: Handle<T>, config: Config) -> Self {
        ServerCore::new(&mut (), wrapper, config)
    }

    /// A server core whose wrapper lives on an embedded [`Heap`], pooling contexts of type `C`.
    ///
    /// # Examples
    ///
    /// ```
    /// use reqguard::{Config, ServerCore, engines::Heap};
    ///
    /// let heap = Heap::new();
    /// let core = ServerCore::embedded_with_context::<Vec<u8>>(heap.alloc("server"), Config::default());
    /// let live = core.upgrade().unwrap();
    /// let ctx = live.context(live.ticket().unwrap()).unwrap();
    /// assert!(ctx.is_empty());
    /// ```
    pub fn embedded_with_context<C: Recycle>(
        wrapper: Handle<T>,
        config: Config,
    ) -> ServerCore<Embedded<T>, C> {
        ServerCore::new(&mut (), wrapper, config)
    }
}
