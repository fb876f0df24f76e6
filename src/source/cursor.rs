//! Atomic persistence of a source's position (journal cursor, file offset) in the state
//! directory. OWNER: source helper.
