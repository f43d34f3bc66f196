//! Secrets and unguessable ids, from the operating system's cryptographic generator (`getrandom(2)` on
//! Linux, through the `getrandom` crate).
//!
//! Why not `fastrand`: it is a fast non-cryptographic generator (wyrand) whose whole state can be
//! recovered from a few outputs. A client that sees a few entity ids, request ids or ETags could then
//! predict the next ones, and a stickiness-cookie key drawn from it is no key. So everything that must
//! be unguessable comes from here: the cookie's HMAC key ([`key`]), entity ids minted at the edge,
//! request and resource ids, CloudFront ETags (`bytes16`). `fastrand` stays where nothing is secret:
//! the per-request weight roll of a traffic split.
//!
//! Entity ids are minted on the request path, so `bytes16` does not make a system call per id: each
//! thread keeps a 512-byte buffer filled by one `getrandom` call and hands out 16 bytes per id, 32 ids
//! per call (`cargo bench --bench random` compares it with a call per id and with `fastrand`). Bytes
//! handed out are wiped from the buffer; the buffer is never shared between threads.
//!
//! If the generator fails (only a broken sandbox does that on Linux) [`check`], run once at start, stops
//! edgesplit from starting. Should it fail later anyway, `bytes16` does not panic: it falls back to
//! SHA-256 over a 32-byte seed drawn from the OS at [`check`] and a counter (a hash-based generator as
//! good as its seed), and logs an error.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use sha2::{Digest, Sha256};

pub use getrandom::Error;

/// Bytes drawn from the OS per refill of a thread's buffer.
const BUFFER: usize = 512;

/// Fills `buf` straight from the OS generator: one system call, for keys and other one-off secrets.
pub fn fill(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf)
}

/// A fresh 32-byte key from the OS generator.
pub fn key() -> Result<[u8; 32], Error> {
    let mut k = [0u8; 32];
    fill(&mut k)?;
    Ok(k)
}

/// Checks that the OS generator answers, and draws the seed `bytes16` falls back on. Call it once at
/// start: an error means edgesplit cannot make secrets and should not run.
pub fn check() -> Result<(), Error> {
    if FALLBACK_SEED.get().is_none() {
        let _ = FALLBACK_SEED.set(key()?);
    }
    Ok(())
}

struct Pool {
    buf: [u8; BUFFER],
    /// Bytes of `buf` already handed out (and wiped).
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { buf: [0; BUFFER], used: BUFFER }) };
}

/// 16 unguessable bytes (128 bits), for an id. No system call except once every 32 ids per thread.
pub(crate) fn bytes16() -> [u8; 16] {
    POOL.with_borrow_mut(|p| {
        if p.used + 16 > BUFFER {
            refill(&mut p.buf);
            p.used = 0;
        }
        let mut out = [0u8; 16];
        if let Some(chunk) = p.buf.get_mut(p.used..p.used + 16) {
            out.copy_from_slice(chunk);
            chunk.fill(0);
        }
        p.used += 16;
        out
    })
}

/// `bytes16` as a number.
pub fn id128() -> u128 {
    u128::from_le_bytes(bytes16())
}

static FALLBACK_SEED: OnceLock<[u8; 32]> = OnceLock::new();
static FALLBACK_COUNTER: AtomicU64 = AtomicU64::new(0);

fn refill(buf: &mut [u8; BUFFER]) {
    let Err(e) = fill(buf) else { return };
    tracing::error!(error = %e, "The OS random generator failed; ids come from the hash-based fallback");
    fallback(buf);
}

/// SHA-256(seed, counter) blocks. Without a seed from the OS (`check` never called, or it failed) this
/// is guessable; edgesplit itself does not start then.
fn fallback(buf: &mut [u8]) {
    let seed = FALLBACK_SEED.get().copied().unwrap_or_default();
    for chunk in buf.chunks_mut(32) {
        let n = FALLBACK_COUNTER.fetch_add(1, Relaxed);
        let block = Sha256::new().chain_update(seed).chain_update(n.to_le_bytes()).finalize();
        let len = chunk.len();
        chunk.copy_from_slice(&block[..len]);
    }
}

/// A random version-4 UUID, for resource ids and request ids.
pub fn uuid() -> String {
    let mut b = bytes16();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A CloudFront-looking ETag: `E` and 13 upper-case letters and digits. It must not be guessable:
/// If-Match is what keeps two writers from overwriting each other blindly.
pub fn etag() -> String {
    const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut tag = String::with_capacity(14);
    tag.push('E');
    while tag.len() < 14 {
        // 252 = 7 x 36: bytes above it are dropped so that every character is equally likely.
        for b in bytes16() {
            if b < 252 && tag.len() < 14 {
                tag.push(ALPHABET[usize::from(b % 36)] as char);
            }
        }
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_across_many_draws_and_threads() {
        let per_thread = 20_000;
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(move || (0..per_thread).map(|_| bytes16()).collect::<Vec<_>>()))
            .collect();
        let mut all = HashSet::new();
        for t in threads {
            for id in t.join().unwrap() {
                assert!(all.insert(id), "id drawn twice: {id:02x?}");
            }
        }
        assert_eq!(all.len(), 4 * per_thread);
        // Also the main thread, across several refills of its buffer.
        for _ in 0..3 * BUFFER / 16 {
            assert!(all.insert(bytes16()));
        }
    }

    #[test]
    fn ids_look_uniform() {
        // 32,000 draws of 16 bytes: each bit is set about half of the time (binomial, sd = 89; 6 sd).
        let n = 32_000u32;
        let mut ones = [0u32; 128];
        for _ in 0..n {
            let x = id128();
            for (i, count) in ones.iter_mut().enumerate() {
                *count += ((x >> i) & 1) as u32;
            }
        }
        for (i, c) in ones.iter().enumerate() {
            assert!((15_450..=16_550).contains(c), "bit {i} set {c} times out of {n}");
        }
    }

    #[test]
    fn keys_are_32_fresh_bytes() {
        check().unwrap();
        let (a, b) = (key().unwrap(), key().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, [0; 32]);
        assert_ne!(a, b);
    }

    #[test]
    fn the_fallback_is_distinct_per_block_and_not_zero() {
        check().unwrap();
        let mut a = [0u8; BUFFER];
        let mut b = [0u8; BUFFER];
        fallback(&mut a);
        fallback(&mut b);
        assert_ne!(a, b);
        let blocks: HashSet<&[u8]> = a.chunks(32).chain(b.chunks(32)).collect();
        assert_eq!(blocks.len(), 2 * BUFFER / 32);
        assert!(blocks.iter().all(|b| b.iter().any(|&x| x != 0)));
    }
}
