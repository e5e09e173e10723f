/// Calls `body` with consecutive pieces of `samples`, each of at most `size` samples (the whole
/// array in one piece when `size` ≤ 0): how the meter tests feed a stream in chunks.
func forEachChunk(of samples: [Float], size: Int, _ body: (UnsafeBufferPointer<Float>) -> Void) {
    samples.withUnsafeBufferPointer { all in
        let step = size > 0 ? size : max(all.count, 1)
        var offset = 0
        while offset < all.count {
            let n = min(step, all.count - offset)
            body(UnsafeBufferPointer(rebasing: all[offset..<(offset + n)]))
            offset += n
        }
    }
}
