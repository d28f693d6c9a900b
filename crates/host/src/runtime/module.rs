//! A compiled workflow module and what it was loaded with.

use std::fmt;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::options::ModuleOptions;
use super::sandbox::GuestState;
use crate::access::AccessPolicy;
use crate::bindings::WorkflowWorldPre;
use crate::model::ModuleIdentity;

/// A compiled workflow module, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Module {
    pub(super) name: Arc<str>,
    pub(super) hash: [u8; 32],
    pub(super) pre: WorkflowWorldPre<GuestState>,
    pub(super) options: Arc<ModuleOptions>,
    /// `options.access`, shared with every run's store import.
    pub(super) access: Arc<AccessPolicy>,
    /// One permit per running workflow of this module, when it is bounded.
    pub(super) slots: Option<Arc<Semaphore>>,
}

impl Module {
    /// The name it was loaded under (its file name, or the name given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SHA-256 of the component's bytes, in hex.
    pub fn digest(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// What its runs record of it: its name and digest.
    pub fn identity(&self) -> ModuleIdentity {
        ModuleIdentity::new(self.name(), self.digest())
    }

    /// Its sandbox settings.
    pub fn options(&self) -> &ModuleOptions {
        &self.options
    }

    pub(crate) fn pre(&self) -> &WorkflowWorldPre<GuestState> {
        &self.pre
    }

    pub(crate) fn slots(&self) -> Option<&Arc<Semaphore>> {
        self.slots.as_ref()
    }
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.name)
            .field("digest", &self.digest())
            .field("options", &self.options)
            .finish()
    }
}
