//! `jobs follow --tail N`: the last N lines of a job's stored output.
//!
//! Lines are counted over the job's output as it was written, stdout and
//! stderr interleaved in sequence order, the way a terminal showed it. A
//! last line without a final newline counts as a line. Each retained piece
//! keeps its stream, so stdout still goes to stdout and stderr to stderr.
//!
//! Memory stays bounded by about N lines plus one chunk, whatever the size
//! of the stored output: a chunk is dropped as soon as the chunks after it
//! hold enough lines on their own.

use std::collections::VecDeque;

use jobs_core::wire::LogStream;

#[derive(Debug)]
pub struct TailBuffer {
    max_lines: usize,
    chunks: VecDeque<TailChunk>,
    newlines: usize,
}

#[derive(Debug)]
struct TailChunk {
    stream: LogStream,
    bytes: Vec<u8>,
    newlines: usize,
}

impl TailBuffer {
    pub fn new(max_lines: usize) -> Self {
        Self {
            max_lines,
            chunks: VecDeque::new(),
            newlines: 0,
        }
    }

    pub fn push(&mut self, stream: LogStream, bytes: Vec<u8>) {
        if self.max_lines == 0 || bytes.is_empty() {
            return;
        }
        let newlines = count_newlines(&bytes);
        self.newlines += newlines;
        self.chunks.push_back(TailChunk {
            stream,
            bytes,
            newlines,
        });
        // N lines need at most N + 1 newlines: N - 1 inside the tail, the
        // final line's own, and the one just before the tail. Chunks wholly
        // before those are never printed.
        while let Some(front) = self.chunks.front() {
            if self.newlines - front.newlines <= self.max_lines {
                break;
            }
            self.newlines -= front.newlines;
            self.chunks.pop_front();
        }
    }

    /// The retained output, cut to start at the first of the last N lines.
    pub fn into_tail(self) -> Vec<(LogStream, Vec<u8>)> {
        let ends_with_newline = self
            .chunks
            .back()
            .is_some_and(|chunk| chunk.bytes.ends_with(b"\n"));
        // The tail starts just after the newline that ends the line before
        // it: counted from the end, that is newline N, or N + 1 when the
        // output ends with a newline of its own.
        let newlines_to_skip = self.max_lines + usize::from(ends_with_newline);
        let start = self.start_after_newline_from_end(newlines_to_skip);

        let mut tail = Vec::new();
        for (index, chunk) in self.chunks.into_iter().enumerate() {
            let bytes = match start {
                Some((start_chunk, _)) if index < start_chunk => continue,
                Some((start_chunk, offset)) if index == start_chunk => {
                    chunk.bytes[offset..].to_vec()
                }
                _ => chunk.bytes,
            };
            if !bytes.is_empty() {
                tail.push((chunk.stream, bytes));
            }
        }
        tail
    }

    /// The chunk and offset just after the `nth` newline counted from the
    /// end, or `None` when there are fewer newlines: then everything is kept.
    fn start_after_newline_from_end(&self, nth: usize) -> Option<(usize, usize)> {
        let mut seen = 0;
        for (index, chunk) in self.chunks.iter().enumerate().rev() {
            for (offset, byte) in chunk.bytes.iter().enumerate().rev() {
                if *byte == b'\n' {
                    seen += 1;
                    if seen == nth {
                        return Some((index, offset + 1));
                    }
                }
            }
        }
        None
    }
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|byte| **byte == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use LogStream::{Stderr, Stdout};

    fn tail_of(max_lines: usize, chunks: &[(LogStream, &str)]) -> Vec<(LogStream, String)> {
        let mut buffer = TailBuffer::new(max_lines);
        for (stream, text) in chunks {
            buffer.push(*stream, text.as_bytes().to_vec());
        }
        buffer
            .into_tail()
            .into_iter()
            .map(|(stream, bytes)| (stream, String::from_utf8(bytes).unwrap()))
            .collect()
    }

    #[test]
    fn keeps_the_last_lines_within_a_chunk() {
        assert_eq!(
            tail_of(2, &[(Stdout, "a\nb\nc\n")]),
            [(Stdout, "b\nc\n".to_string())]
        );
        assert_eq!(
            tail_of(2, &[(Stdout, "a\nb\nc")]),
            [(Stdout, "b\nc".to_string())]
        );
    }

    #[test]
    fn keeps_everything_when_there_are_fewer_lines() {
        assert_eq!(
            tail_of(10, &[(Stdout, "a\n"), (Stderr, "b")]),
            [(Stdout, "a\n".to_string()), (Stderr, "b".to_string())]
        );
    }

    #[test]
    fn lines_span_chunks_and_streams_keep_their_pieces() {
        let chunks = [
            (Stdout, "one\ntw"),
            (Stdout, "o\nthr"),
            (Stderr, "warn\n"),
            (Stdout, "ee\nfour\n"),
        ];
        assert_eq!(
            tail_of(3, &chunks),
            [
                (Stdout, "thr".to_string()),
                (Stderr, "warn\n".to_string()),
                (Stdout, "ee\nfour\n".to_string()),
            ]
        );
        assert_eq!(tail_of(1, &chunks), [(Stdout, "four\n".to_string())]);
    }

    #[test]
    fn zero_lines_is_nothing() {
        assert!(tail_of(0, &[(Stdout, "a\nb\n")]).is_empty());
    }

    #[test]
    fn memory_stays_bounded_by_the_lines_asked_for() {
        let mut buffer = TailBuffer::new(3);
        for line in 0..10_000 {
            buffer.push(Stdout, format!("line {line}\n").into_bytes());
        }
        assert!(buffer.chunks.len() <= 4, "{}", buffer.chunks.len());
        let tail: Vec<u8> = buffer
            .into_tail()
            .into_iter()
            .flat_map(|(_, b)| b)
            .collect();
        assert_eq!(tail, b"line 9997\nline 9998\nline 9999\n");
    }

    #[test]
    fn binary_output_survives() {
        let mut buffer = TailBuffer::new(1);
        buffer.push(Stdout, vec![0xff, b'\n', 0x00, 0xfe]);
        assert_eq!(buffer.into_tail(), [(Stdout, vec![0x00, 0xfe])]);
    }
}
