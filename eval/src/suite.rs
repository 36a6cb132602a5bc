//! The scenes an evaluation run asks the model for: balanced over every value of every
//! attribute, with the held-out (colour, shape) pairs several times each.

use kernels::philox::philox4x32_10;

use pipeline::world::{Background, Color, Motion, Scene, Shape, Size, HELD_OUT};

/// Philox stream of the suite's shuffles, apart from noise and start streams.
const SUITE_STREAM: u32 = 0x5355_4954;

/// `n` scenes drawn from `seed`. About one in ten is a held-out pair (each pair at least
/// `max(1, n / 40)` times: 5 times in a 200-scene suite), the rest cover the training pairs.
/// Every attribute cycles through shuffled rounds of all its values, so every value appears
/// once `n` exceeds 40 (200 scenes or more is the intended use).
pub fn prompt_suite(n: usize, seed: u64) -> Vec<Scene> {
    let mut rng = Draws { seed, counter: 0 };
    let held = (4 * (n / 40).max(1)).min(n);
    let mut sizes = Cycle::new(Size::ALL);
    let mut motions = Cycle::new(Motion::ALL);
    let mut backgrounds = Cycle::new(Background::ALL);
    let mut colors = Cycle::new(Color::ALL);
    let mut shapes = Cycle::new(Shape::ALL);
    let mut out: Vec<Scene> = (0..n)
        .map(|i| {
            let (color, shape) = if i < held {
                HELD_OUT[i % HELD_OUT.len()]
            } else {
                let color = colors.next(&mut rng);
                let mut shape = shapes.next(&mut rng);
                while HELD_OUT.contains(&(color, shape)) {
                    shape = shapes.next(&mut rng);
                }
                (color, shape)
            };
            Scene {
                size: sizes.next(&mut rng),
                color,
                shape,
                motion: motions.next(&mut rng),
                background: backgrounds.next(&mut rng),
            }
        })
        .collect();
    rng.shuffle(&mut out);
    out
}

/// Counter-based uniform draws from the kernels' Philox generator.
struct Draws {
    seed: u64,
    counter: u64,
}

impl Draws {
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        let key = [self.seed as u32, (self.seed >> 32) as u32];
        let c = self.counter;
        self.counter += 1;
        let x = philox4x32_10([c as u32, (c >> 32) as u32, SUITE_STREAM, 0], key);
        let wide = (u64::from(x[0]) << 32) | u64::from(x[1]);
        (wide % n as u64) as usize
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Endless shuffled rounds of all values of an attribute.
struct Cycle<T: Copy + 'static> {
    all: &'static [T],
    round: Vec<T>,
}

impl<T: Copy + 'static> Cycle<T> {
    fn new(all: &'static [T]) -> Self {
        Cycle {
            all,
            round: Vec::new(),
        }
    }

    fn next(&mut self, rng: &mut Draws) -> T {
        if self.round.is_empty() {
            self.round = self.all.to_vec();
            rng.shuffle(&mut self.round);
        }
        self.round.pop().unwrap_or(self.all[0])
    }
}
