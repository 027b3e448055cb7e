// Rule (G1, probe): an admitted bundle has no public constructor and no `Default`; only
// `Live::admit` and `Live::admit_with` make one, after the upgrade and while the server admits.
// Right way: `core.upgrade()?.admit(|ctx| ...)`.
use reqguard::Admitted;

fn main() {
    let _bundle: Admitted<(), ()> = Default::default();
}
