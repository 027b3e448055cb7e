//! Out of file descriptors, the loops of a group free them for each other: descriptors are
//! the process's, and with `SO_REUSEPORT` the kernel chose the loop a newcomer waits on, which
//! may hold none of them (a slowloris on the other loops does). As the mio loops do
//! (`GroupShared::want_room` in src/http/group.rs).

use std::sync::Arc;

use tokio::sync::Notify;

/// One loop's link to its group's requests for room.
pub(crate) struct Room {
    /// One per loop: notified when another loop asks this one for room.
    asks: Arc<[Notify]>,
    index: usize,
}

impl Room {
    /// Links for `loops` loops, one each.
    #[cfg(feature = "server")] // `HyperGroup` binds its listeners with the mio group's code
    pub(crate) fn for_group(loops: usize) -> impl Iterator<Item = Room> {
        let asks: Arc<[Notify]> = (0..loops).map(|_| Notify::new()).collect();
        (0..loops).map(move |index| Room {
            asks: Arc::clone(&asks),
            index,
        })
    }

    /// Asks every other loop to evict one idle or slow connection.
    pub(crate) fn ask_others(&self) {
        for (index, asks) in self.asks.iter().enumerate() {
            if index != self.index {
                // A permit is kept if that loop is not waiting now: it evicts when it next
                // looks.
                asks.notify_one();
            }
        }
    }

    /// Resolves when another loop asked this one for room; never for a loop alone.
    pub(crate) async fn asked(room: Option<&Room>) {
        match room {
            Some(room) => room.asks[room.index].notified().await,
            None => std::future::pending().await,
        }
    }
}
