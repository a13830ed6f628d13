//! Seeded mutation of valid inputs, for the tests that feed parsers hostile input: deterministic,
//! so a failure reproduces from its seed.

/// xorshift64*: enough randomness for mutation, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four random edits of `seed`: a character removed, one of `pieces` inserted, the rest cut
/// off, or two characters swapped.
pub fn mutate(rng: &mut Rng, seed: &str, pieces: &[&str]) -> String {
    let mut s: Vec<char> = seed.chars().collect();
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 if !s.is_empty() => {
                let i = rng.below(s.len());
                s.remove(i);
            }
            1 => {
                let i = rng.below(s.len() + 1);
                let piece = pieces[rng.below(pieces.len())];
                for (k, c) in piece.chars().enumerate() {
                    s.insert(i + k, c);
                }
            }
            2 if !s.is_empty() => {
                let i = rng.below(s.len());
                s.truncate(i);
            }
            _ if s.len() > 1 => {
                let (a, b) = (rng.below(s.len()), rng.below(s.len()));
                s.swap(a, b);
            }
            _ => {}
        }
    }
    s.into_iter().collect()
}
