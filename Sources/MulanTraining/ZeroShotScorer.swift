import MulanCore
import MulanRecords
import MulanTensor

/// The model's zero-shot ability as a reusable function: the cosine similarity of audio with text
/// prompts. `mulan-filter audio` scores catalog clips with it; choosing the best windows of a
/// track (`best:N`) scores the windows of decoded samples with `windowScores`.
///
/// Both towers end in unit-norm embeddings, so a score is a dot product in [-1, 1]; a clip's
/// embedding is the renormalized mean of its windows (`Embedder`), as MuLan's zero-shot protocol
/// scores a clip.
public final class ZeroShotScorer {
    public let embedder: Embedder
    public let prompts: [Prompt]
    /// Unit-norm prompt embeddings, [prompts.count × dim] row-major.
    public let promptEmbeddings: [Float]

    /// Embeds the prompts once; the embedder must have been opened with the vocabulary.
    public init(embedder: Embedder, prompts: [Prompt]) throws(MulanError) {
        guard !prompts.isEmpty else {
            throw MulanError(.usage, "no prompt to score against", hint: "pass --prompt NAME=TEXT (repeatable)")
        }
        self.embedder = embedder
        self.prompts = prompts
        promptEmbeddings = try embedder.embed(texts: prompts.map(\.text))
    }

    /// The cosine of one audio embedding with every prompt, in prompt order.
    public func scores(embedding: [Float]) -> [Float] {
        let d = embedder.dim
        var norm: Float = 0
        for v in embedding { norm += v * v }
        let inverse = 1 / max(norm.squareRoot(), 1e-12)
        return prompts.indices.map { p in
            var dot: Float = 0
            for j in 0..<min(d, embedding.count) { dot += embedding[j] * promptEmbeddings[p * d + j] }
            return dot * inverse
        }
    }

    /// Scores of every window of `samples` (mono, at the model's sample rate) that starts at one of
    /// `offsets` (default: `Embedder.windowOffsets`), each window scored on its own.
    public func windowScores(samples: [Float], offsets: [Int]? = nil) -> [(offset: Int, scores: [Float])] {
        let starts = offsets ?? embedder.windowOffsets(sampleCount: samples.count)
        let embeddings = embedder.embedWindows(samples, offsets: starts)
        return zip(starts, embeddings).map { ($0, scores(embedding: $1)) }
    }

    /// Scores of clips held in memory (mono, at the model's sample rate), each embedded as
    /// `score(_:)` embeds a decoded item; nil for a clip without a window (no samples).
    public func scores(clips: [[Float]]) -> [[Float]?] {
        embedder.embed(clips: clips).map { $0.map { scores(embedding: $0.embedding) } }
    }

    /// Scores of audio items (files or shard clips), each as `Embedder.embed(audio:)` embeds it;
    /// an item that cannot be decoded gives its failure.
    public func score(_ items: [AudioItem]) -> [Result<(scores: [Float], windows: Int), EmbeddingFailure>] {
        embedder.embed(audio: items).map { outcome in
            switch outcome {
            case .embedded(let row, let e): .success((scores(embedding: e), row.windows ?? 1))
            case .failed(let f): .failure(f)
            }
        }
    }
}

extension Embedder {
    /// Unit-norm embeddings of the windows of `samples` (mono, at the model's rate) starting at
    /// `offsets`, one per offset (a window running past the end is zero-padded, as in training).
    public func embedWindows(_ samples: [Float], offsets: [Int]) -> [[Float]] {
        var out: [[Float]] = []
        out.reserveCapacity(offsets.count)
        forEachWindowEmbedding(offsets.map { (0, $0) }, of: [samples]) { _, e in
            let norm = max(e.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            out.append(e.map { $0 / norm })
        }
        return out
    }
}
