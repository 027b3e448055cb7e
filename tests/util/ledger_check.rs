//! The ledger's consistency check shared by the hostile-embedder probe files.

use reqguard::{GuardKind, Ledger};

/// The ledger's figures agree with each other and with its report; nothing went negative.
pub(crate) fn check_ledger(ledger: &Ledger) {
    let report = ledger.report();
    for kind in GuardKind::ALL {
        let reported: usize = report
            .sites()
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.count)
            .sum();
        assert_eq!(
            reported,
            ledger.outstanding(kind),
            "{kind:?}: report != count"
        );
        assert!(
            ledger.outstanding(kind) as u64 <= ledger.minted(kind),
            "{kind:?}: more out than minted"
        );
        // A wrapped-around count is astronomically large.
        assert!(ledger.outstanding(kind) < 1 << 32, "{kind:?} underflowed");
        if Ledger::tracks_sites() {
            assert!(
                report.sites().iter().all(|s| s.location.is_some()),
                "an unlocated row in leak-check mode:\n{report}"
            );
        }
    }
    assert_eq!(report.total(), ledger.total_outstanding());
    assert_eq!(ledger.is_quiescent(), report.is_empty());
}
