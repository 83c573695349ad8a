//! Documentation only: performance figures, guarantees and limitations.

pub mod guarantees;
pub mod limitations;
pub mod performance;
