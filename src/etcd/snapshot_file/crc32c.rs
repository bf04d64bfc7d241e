//! CRC-32C (Castagnoli), the checksum `etcdctl snapshot status` prints as "hash".
//!
//! Implemented here (slicing-by-8, ~20 lines) rather than adding a crate for one function;
//! the Go standard library's `crc32.MakeTable(crc32.Castagnoli)` is the reference.

const POLY: u32 = 0x82F6_3B78; // reflected Castagnoli polynomial

const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = make_tables();

/// A running CRC-32C, like Go's `hash.Hash32` from `crc32.New(castagnoli)`.
#[derive(Debug, Clone)]
pub struct Crc32c {
    state: u32,
}

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c { state: !0 }
    }
}

impl Crc32c {
    pub fn update(&mut self, mut data: &[u8]) {
        let t = &TABLES;
        let mut c = self.state;
        while data.len() >= 8 {
            let lo = c ^ u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            c = t[7][(lo & 0xff) as usize]
                ^ t[6][((lo >> 8) & 0xff) as usize]
                ^ t[5][((lo >> 16) & 0xff) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][data[4] as usize]
                ^ t[2][data[5] as usize]
                ^ t[1][data[6] as usize]
                ^ t[0][data[7] as usize];
            data = &data[8..];
        }
        for &b in data {
            c = (c >> 8) ^ t[0][((c ^ b as u32) & 0xff) as usize];
        }
        self.state = c;
    }

    pub fn finish(&self) -> u32 {
        !self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_check_value() {
        // The standard CRC-32C check value of "123456789".
        let mut c = Crc32c::default();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xE306_9283);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut one = Crc32c::default();
        one.update(&data);
        let mut parts = Crc32c::default();
        for chunk in data.chunks(7) {
            parts.update(chunk);
        }
        assert_eq!(one.finish(), parts.finish());
    }
}
