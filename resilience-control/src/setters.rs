//! One macro for the settings structs' builder-style setters, which all look alike.

/// Declares a `#[must_use]` setter per field: `name(value)` replaces `self.name`.
macro_rules! setters {
    ($ty:ident { $( $(#[$doc:meta])* $name:ident: $t:ty; )* }) => {
        impl $ty {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, value: $t) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

pub(crate) use setters;
