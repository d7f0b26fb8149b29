//! A campaign's counters, and how one change of a call item moves them.
