//! Quiet deliberate panics in the probe files (`#[path = "util/quiet.rs"] mod quiet;`).

/// Silences the deliberate panics (messages ending in "panics" or "panics too", and payloads
/// that are not strings, such as the probes' `PanicsOnDrop`) and keeps every other message, so
/// a failing assertion still says why.
pub(crate) fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        match message {
            Some(m) if m.ends_with("panics") || m.ends_with("panics too") => {}
            None => {}
            _ => eprintln!("{info}"),
        }
    }));
}
