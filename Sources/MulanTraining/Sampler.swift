import MulanCore

/// Draws training batches as MuLan does: each example is one clip with ONE text of one source,
/// and batch k takes `mix.quotas(batchSize, k)` examples from each source's stream. A clip drawn
/// twice for one batch (through two sources) is replaced by the stream's next example, so no batch
/// holds the same clip twice (it would be its own false negative).
final class Sampler {
    let mix: SourceMix
    let batchSize: Int
    private var streams: [TextSource: SourceStream] = [:]

    init(split: DatasetSplit, mix: SourceMix, batchSize: Int, seed: UInt64, bufferSize: Int) {
        self.mix = mix
        self.batchSize = batchSize
        for s in mix.sources {
            streams[s] = SourceStream(split: split, source: s, seed: seed, bufferSize: bufferSize)
        }
    }

    /// The examples of batch number `batch`, sources in mix order.
    func batch(_ batch: Int) throws(MulanError) -> [ExampleRef] {
        let quotas = mix.quotas(batchSize: batchSize, batch: batch)
        var seen = Set<String>()
        var out: [ExampleRef] = []
        out.reserveCapacity(batchSize)
        for s in mix.sources {
            guard let stream = streams[s] else { continue }
            for _ in 0..<quotas[s, default: 0] {
                var ref = try stream.next()
                var tries = 0
                while seen.contains(ref.key) && tries < 8 {
                    ref = try stream.next()
                    tries += 1
                }
                seen.insert(ref.key)
                out.append(ref)
            }
        }
        return out
    }

    var state: SamplerState {
        var st = SamplerState()
        for (s, stream) in streams { st.streams[s.rawValue] = .init(epoch: stream.epoch, drawn: stream.drawn) }
        return st
    }

    func restore(_ state: SamplerState) throws(MulanError) {
        for (s, stream) in streams {
            let p = state.streams[s.rawValue] ?? .init(epoch: 0, drawn: 0)
            try stream.restore(epoch: p.epoch, drawn: p.drawn)
        }
    }
}
