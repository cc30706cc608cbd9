//! Hostile input, generated: mutated manifests and random names must never
//! panic the parsers, and whatever they accept must round-trip. (A stand-in
//! for coverage-guided fuzzing, which needs a nightly toolchain this project's
//! machines do not have.)

use wharf_oci::{Digest, ParsedManifest, Reference, RepositoryName, Tag};

/// Small deterministic PRNG (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn seeds() -> Vec<String> {
    vec![
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D}","size":10,"urls":["http://x"]}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","size":3}},"annotations":{{"a":"b"}}}}"#
        ),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","size":7,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        ),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{D}","size":2}},"layers":[]}}"#
        ),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x.t","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{D}","size":2}},"layers":null}}"#
        ),
    ]
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        if out.is_empty() {
            out.push(b'{');
        }
        let at = rng.below(out.len());
        match rng.below(5) {
            0 => out[at] = (rng.next() & 0xff) as u8,
            1 => {
                let alphabet = b"{}[]\":,-0123456789eE.\\ nultrfas";
                out.insert(at, alphabet[rng.below(alphabet.len())]);
            }
            2 => {
                out.remove(at);
            }
            3 => out.truncate(at),
            _ => {
                let from = rng.below(out.len());
                let len = rng.below(16).min(out.len() - from);
                let piece = out[from..from + len].to_vec();
                out.splice(at..at, piece);
            }
        }
    }
    out
}

#[test]
fn mutated_manifests_never_panic() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let seeds = seeds();
    let mut accepted = 0;
    for i in 0..20_000 {
        let seed = seeds[i % seeds.len()].as_bytes();
        let bytes = mutate(&mut rng, seed);
        let content_type = match rng.below(3) {
            0 => None,
            1 => Some("application/vnd.oci.image.manifest.v1+json"),
            _ => Some("application/json; charset=utf-8"),
        };
        if let Ok(m) = ParsedManifest::parse(content_type, &bytes) {
            accepted += 1;
            assert!(!m.media_type.is_empty());
            // What is accepted parses the same way again.
            assert_eq!(ParsedManifest::parse(content_type, &bytes).unwrap(), m);
        }
    }
    // The mutations are small: some inputs must still be valid, or this test
    // exercised nothing but the JSON parser's error path.
    assert!(accepted > 100, "only {accepted} mutated manifests parsed");
}

#[test]
fn random_names_tags_digests_never_panic_and_round_trip() {
    let mut rng = Rng(0xC0FF_EE00_1234_5678);
    let alphabet: Vec<char> = "abcz09._-/:AZ%@ \u{e9}".chars().collect();
    for _ in 0..50_000 {
        let len = rng.below(80);
        let s: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        if let Ok(n) = RepositoryName::parse(&s) {
            assert_eq!(n.as_str(), s);
            assert!(!n.project().is_empty() && !n.project().contains('/'));
        }
        if let Ok(t) = Tag::parse(&s) {
            assert_eq!(t.as_str(), s);
        }
        if let Ok(r) = Reference::parse(&s) {
            assert_eq!(r.to_string(), s);
        }
        let digest = format!("sha256:{}", &s);
        if let Ok(d) = Digest::parse(&digest) {
            assert_eq!(d.to_string(), digest);
        }
    }
}
