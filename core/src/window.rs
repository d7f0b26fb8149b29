//! Calling windows: when a contact may be called, in their time zone.
