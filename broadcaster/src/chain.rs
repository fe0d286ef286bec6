//! The watcher's view of the chain above the solidified height: which block id it took at
//! each number, so that a block replaced there (a fork the node switched away from) is
//! noticed and everything credited from it is un-seen.
//!
//! Why ids and parents: a block number alone says nothing about which block the watcher
//! credited; Tron block ids are unique, and a block's `parentHash` names the block it
//! builds on. A new block whose parent is not the id the watcher holds one number below
//! proves that the held block was replaced; the watcher then steps back until parents
//! agree again. Below the solidified height nothing may be replaced (19 of 27 SRs built on
//! it): such a replacement is an error to stop on, never something to repair silently.
//!
//! Pure: the caller fetches blocks, persists [`Chain::blocks`] with its last processed
//! block, and rebuilds the tracker with [`Chain::resume`] after a restart.

use std::collections::BTreeMap;

/// A block id (`blockID`): 8 bytes of block number, then 24 bytes of the header hash.
pub type BlockId = [u8; 32];

/// What the tracker needs of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    pub number: u64,
    pub id: BlockId,
    pub parent: BlockId,
}

/// Why a block could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("block {got} does not follow the last block taken, {expected_at_most} at most")]
    Gap { expected_at_most: u64, got: u64 },
    #[error("block {number} is at or below the solidified height {solidified} and differs from the one taken")]
    SolidifiedReplaced { number: u64, solidified: u64 },
    #[error("block {number} is below the oldest block the tracker holds ({oldest})")]
    OutsideWindow { number: u64, oldest: u64 },
    #[error("stored chain state is unusable: {0}")]
    BadResume(&'static str),
}

impl ChainError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ChainError::Gap { .. } => "chain_gap",
            ChainError::SolidifiedReplaced { .. } => "chain_solidified_replaced",
            ChainError::OutsideWindow { .. } => "chain_outside_window",
            ChainError::BadResume(_) => "chain_bad_resume",
        }
    }
}

/// What observing a block means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Take this block: credit it. `unseen` lists blocks it replaced (same number or
    /// above), whose credits must be un-seen first; usually empty.
    Accepted { unseen: Vec<(u64, BlockId)> },
    /// The same block as already taken: nothing to do.
    AlreadySeen,
    /// The block's parent is not the block taken one number below, so that one was
    /// replaced: un-see `unseen`, then fetch again from `resume_from`. This block was not
    /// taken.
    Rewind {
        unseen: Vec<(u64, BlockId)>,
        resume_from: u64,
    },
}

/// Blocks taken above (and one at or below) the solidified height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    solidified: u64,
    /// Contiguous numbers; the lowest is at or below `solidified` (the anchor every
    /// parent check ends on).
    blocks: BTreeMap<u64, BlockId>,
}

impl Chain {
    /// Starts from a solidified block (the watcher's first run starts at one).
    pub fn start(number: u64, id: BlockId) -> Chain {
        Chain {
            solidified: number,
            blocks: BTreeMap::from([(number, id)]),
        }
    }

    /// Rebuilds the tracker from stored state: contiguous blocks whose lowest is at or
    /// below `solidified`.
    pub fn resume(
        solidified: u64,
        blocks: impl IntoIterator<Item = (u64, BlockId)>,
    ) -> Result<Chain, ChainError> {
        let mut map = BTreeMap::new();
        for (n, id) in blocks {
            if map.insert(n, id).is_some() {
                return Err(ChainError::BadResume("a block number appears twice"));
            }
        }
        let (Some((&low, _)), Some((&high, _))) = (map.first_key_value(), map.last_key_value())
        else {
            return Err(ChainError::BadResume("no blocks"));
        };
        if high - low + 1 != map.len() as u64 {
            return Err(ChainError::BadResume(
                "the block numbers are not contiguous",
            ));
        }
        if low > solidified {
            return Err(ChainError::BadResume(
                "no block at or below the solidified height",
            ));
        }
        let mut chain = Chain {
            solidified: low,
            blocks: map,
        };
        chain.set_solidified(solidified);
        Ok(chain)
    }

    /// The last block taken.
    pub fn tip(&self) -> (u64, BlockId) {
        // Never empty: every path that removes blocks keeps the anchor.
        self.blocks
            .last_key_value()
            .map(|(n, id)| (*n, *id))
            .unwrap_or((self.solidified, [0; 32]))
    }

    pub fn solidified(&self) -> u64 {
        self.solidified
    }

    /// The blocks held, lowest first: what to persist.
    pub fn blocks(&self) -> impl Iterator<Item = (u64, BlockId)> + '_ {
        self.blocks.iter().map(|(n, id)| (*n, *id))
    }

    /// Raises the solidified height (a lower one, as from a lagging node, is ignored) and
    /// forgets blocks below the highest one at or below it, which becomes the anchor.
    pub fn set_solidified(&mut self, height: u64) {
        if height <= self.solidified {
            return;
        }
        self.solidified = height;
        let anchor = self.blocks.range(..=height).next_back().map(|(n, _)| *n);
        if let Some(anchor) = anchor {
            self.blocks = self.blocks.split_off(&anchor);
        }
    }

    /// Places `b`, the next block fetched (a block at or below the tip re-fetched after a
    /// [`Step::Rewind`], or the tip's successor).
    pub fn observe(&mut self, b: &BlockRef) -> Result<Step, ChainError> {
        let (tip, _) = self.tip();
        if b.number > tip + 1 {
            return Err(ChainError::Gap {
                expected_at_most: tip + 1,
                got: b.number,
            });
        }
        let oldest = self.blocks.first_key_value().map_or(tip, |(n, _)| *n);
        if b.number <= oldest {
            // Only the anchor itself can be met again here, and only unchanged.
            return match self.blocks.get(&b.number) {
                Some(id) if *id == b.id => Ok(Step::AlreadySeen),
                Some(_) => Err(ChainError::SolidifiedReplaced {
                    number: b.number,
                    solidified: self.solidified,
                }),
                None => Err(ChainError::OutsideWindow {
                    number: b.number,
                    oldest,
                }),
            };
        }
        let replaced_here = match self.blocks.get(&b.number) {
            Some(id) if *id == b.id => return Ok(Step::AlreadySeen),
            Some(_) => true,
            None => false,
        };
        // `b.number - 1` is held: it is at least `oldest`, and blocks are contiguous.
        // Everything is checked before anything is removed, so an error changes nothing.
        let parent_number = b.number - 1;
        if self.blocks.get(&parent_number) == Some(&b.parent) {
            let unseen = if replaced_here {
                self.cut_from(b.number)?
            } else {
                Vec::new()
            };
            self.blocks.insert(b.number, b.id);
            Ok(Step::Accepted { unseen })
        } else {
            Ok(Step::Rewind {
                unseen: self.cut_from(parent_number)?,
                resume_from: parent_number,
            })
        }
    }

    /// Removes the blocks numbered `from` and above; refuses to touch a solidified one.
    fn cut_from(&mut self, from: u64) -> Result<Vec<(u64, BlockId)>, ChainError> {
        let oldest = self.blocks.first_key_value().map_or(from, |(n, _)| *n);
        if from <= self.solidified || from <= oldest {
            return Err(ChainError::SolidifiedReplaced {
                number: from,
                solidified: self.solidified,
            });
        }
        Ok(self.blocks.split_off(&from).into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A distinct id per (number, fork).
    fn id(n: u64, fork: u8) -> BlockId {
        let mut id = [fork; 32];
        id[..8].copy_from_slice(&n.to_be_bytes());
        id
    }

    fn blk(n: u64, fork: u8, parent_fork: u8) -> BlockRef {
        BlockRef {
            number: n,
            id: id(n, fork),
            parent: id(n - 1, parent_fork),
        }
    }

    fn accepted() -> Step {
        Step::Accepted { unseen: vec![] }
    }

    #[test]
    fn extends_and_ignores_repeats() {
        let mut c = Chain::start(100, id(100, 0));
        assert_eq!(c.observe(&blk(101, 0, 0)).unwrap(), accepted());
        assert_eq!(c.observe(&blk(102, 0, 0)).unwrap(), accepted());
        assert_eq!(c.observe(&blk(102, 0, 0)).unwrap(), Step::AlreadySeen);
        assert_eq!(c.tip(), (102, id(102, 0)));
        assert_eq!(c.observe(&blk(104, 0, 0)).unwrap_err().code(), "chain_gap");
    }

    #[test]
    fn a_replaced_tip_is_unseen_and_the_replacement_taken() {
        let mut c = Chain::start(100, id(100, 0));
        c.observe(&blk(101, 0, 0)).unwrap();
        c.observe(&blk(102, 0, 0)).unwrap();
        // Another block 102 on the same parent.
        assert_eq!(
            c.observe(&blk(102, 1, 0)).unwrap(),
            Step::Accepted {
                unseen: vec![(102, id(102, 0))]
            }
        );
        assert_eq!(c.tip(), (102, id(102, 1)));
    }

    #[test]
    fn a_parent_mismatch_rewinds_until_parents_agree() {
        let mut c = Chain::start(100, id(100, 0));
        for n in 101..=103 {
            c.observe(&blk(n, 0, 0)).unwrap();
        }
        // Fork 1 replaced 102 and 103; its 104 arrives first.
        assert_eq!(
            c.observe(&blk(104, 1, 1)).unwrap(),
            Step::Rewind {
                unseen: vec![(103, id(103, 0))],
                resume_from: 103
            }
        );
        assert_eq!(
            c.observe(&blk(103, 1, 1)).unwrap(),
            Step::Rewind {
                unseen: vec![(102, id(102, 0))],
                resume_from: 102
            }
        );
        assert_eq!(c.observe(&blk(102, 1, 0)).unwrap(), accepted());
        assert_eq!(c.observe(&blk(103, 1, 1)).unwrap(), accepted());
        assert_eq!(c.observe(&blk(104, 1, 1)).unwrap(), accepted());
        let held: Vec<_> = c.blocks().collect();
        assert_eq!(
            held,
            vec![
                (100, id(100, 0)),
                (101, id(101, 0)),
                (102, id(102, 1)),
                (103, id(103, 1)),
                (104, id(104, 1))
            ]
        );
    }

    #[test]
    fn nothing_at_or_below_the_solidified_height_is_replaced() {
        let mut c = Chain::start(100, id(100, 0));
        for n in 101..=103 {
            c.observe(&blk(n, 0, 0)).unwrap();
        }
        c.set_solidified(102);
        assert_eq!(c.blocks().next(), Some((102, id(102, 0))));
        // 103 on a parent other than the solidified 102.
        assert_eq!(
            c.observe(&blk(103, 1, 1)).unwrap_err().code(),
            "chain_solidified_replaced"
        );
        assert_eq!(
            c.observe(&blk(102, 1, 0)).unwrap_err().code(),
            "chain_solidified_replaced"
        );
        assert_eq!(c.observe(&blk(102, 0, 0)).unwrap(), Step::AlreadySeen);
        assert_eq!(
            c.observe(&blk(101, 0, 0)).unwrap_err().code(),
            "chain_outside_window"
        );
        // A lower solidified height (a lagging node) changes nothing.
        c.set_solidified(50);
        assert_eq!(c.solidified(), 102);
        // The block above is still replaceable.
        assert_eq!(
            c.observe(&blk(103, 1, 0)).unwrap(),
            Step::Accepted {
                unseen: vec![(103, id(103, 0))]
            }
        );
    }

    #[test]
    fn resume_restores_the_same_state() {
        let mut c = Chain::start(100, id(100, 0));
        for n in 101..=103 {
            c.observe(&blk(n, 0, 0)).unwrap();
        }
        c.set_solidified(101);
        let r = Chain::resume(c.solidified(), c.blocks()).unwrap();
        assert_eq!(r, c);
        let mut r = r;
        assert_eq!(r.observe(&blk(104, 0, 0)).unwrap(), accepted());
        assert_eq!(
            Chain::resume(100, []).unwrap_err().code(),
            "chain_bad_resume"
        );
        assert_eq!(
            Chain::resume(100, [(100, id(100, 0)), (102, id(102, 0))])
                .unwrap_err()
                .code(),
            "chain_bad_resume"
        );
        assert_eq!(
            Chain::resume(99, [(100, id(100, 0))]).unwrap_err().code(),
            "chain_bad_resume"
        );
    }
}
