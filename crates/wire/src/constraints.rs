//! Placeholder: the constraint table (filled in by the validation work).
