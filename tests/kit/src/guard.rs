//! [`ChildGuard`]: kills and reaps a child process started elsewhere when it goes out of scope.

use std::ops::{Deref, DerefMut};
use std::process::Child;

/// A [`Child`] that is killed (SIGKILL) and reaped when dropped, also when the test panics.
///
/// For processes whose pipes the test reads itself; [`Spawned`](crate::Spawned) also logs the
/// output and restarts. Derefs to the [`Child`].
///
/// ```no_run
/// use std::process::Command;
///
/// use bcfl_testkit::ChildGuard;
///
/// let mut sleeper = ChildGuard::new(Command::new("sleep").arg("60").spawn().unwrap());
/// assert!(sleeper.try_wait().unwrap().is_none());
/// // Dropped here: killed and reaped.
/// ```
#[derive(Debug)]
pub struct ChildGuard(Child);

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> Self {
        Self(child)
    }
}

impl Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Already exited is fine; nothing else can be handled in a destructor.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
