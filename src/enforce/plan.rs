//! Decisions to disjoint kernel elements. Pure.
