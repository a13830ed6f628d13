//! Where the next page of a directory's user list starts, so that a client paging by position
//! (`startIndex`, as Okta's import does) reads each page by id instead of skipping every row
//! before it.
//!
//! Ids are UUIDv7, so a new user sorts after every user there was: creating users never moves a
//! position. Deleting one moves every position after it, so a mark remembers the directory's count
//! of deletions when it was made and is used only while that count is the same. A mark is this
//! replica's memory of a page it served, not state: without one (another replica served the page
//! before, or the replica restarted) the page is read by position, with the same result.

use std::collections::HashMap;
use std::sync::Mutex;

/// Marks kept before the oldest are dropped; a mark is a few dozen bytes.
const CAPACITY: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The id the page at this position starts after.
    pub after: String,
    /// The directory's count of deleted users when the mark was made.
    pub deleted: i64,
}

#[derive(Default)]
pub struct PageMarks {
    marks: Mutex<HashMap<(String, u64), Mark>>,
}

impl PageMarks {
    /// The mark for the page of `directory_id` at position `start` (1-based), if it still holds
    /// with `deleted` users deleted so far.
    pub fn get(&self, directory_id: &str, start: u64, deleted: i64) -> Option<String> {
        let marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks
            .get(&(directory_id.to_string(), start))
            .filter(|m| m.deleted == deleted)
            .map(|m| m.after.clone())
    }

    /// Records that position `start` of the directory's list follows the user `after`.
    pub fn put(&self, directory_id: &str, start: u64, after: &str, deleted: i64) {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        if marks.len() >= CAPACITY {
            marks.clear();
        }
        marks.insert(
            (directory_id.to_string(), start),
            Mark {
                after: after.to_string(),
                deleted,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_holds_until_a_user_is_deleted() {
        let marks = PageMarks::default();
        marks.put("d1", 101, "id-100", 3);
        assert_eq!(marks.get("d1", 101, 3).as_deref(), Some("id-100"));
        assert_eq!(
            marks.get("d1", 101, 4),
            None,
            "a deletion moved the positions"
        );
        assert_eq!(marks.get("d1", 201, 3), None);
        assert_eq!(marks.get("d2", 101, 3), None, "each directory has its own");
    }

    #[test]
    fn the_marks_stay_bounded() {
        let marks = PageMarks::default();
        for i in 0..(CAPACITY as u64 + 10) {
            marks.put("d", i, "x", 0);
        }
        assert!(marks.marks.lock().map(|m| m.len()).unwrap_or(0) <= CAPACITY);
    }
}
