import Foundation
import MulanCore
import MulanTraining
import Testing

@Suite("Source mixing and evaluation metrics")
struct SourceMixAndMetricsTests {
    @Test func parsesAndRejects() throws {
        let mix = try SourceMix(parsing: "tags=2,descriptions=2,playlists=1,aset=1")
        #expect(mix == SourceMix.muLan)
        #expect(mix.description == "tags=2,descriptions=2,playlists=1,aset=1")
        for bad in ["tags", "lyrics=1", "tags=-1", "tags=x", "tags=0", "tags=1,tags=2"] {
            let error = #expect(throws: MulanError.self, "\(bad)") { try SourceMix(parsing: bad) }
            #expect(error?.code == .usage, "\(bad)")
        }
    }

    @Test(arguments: [64, 7, 3, 100]) func quotasFillEveryBatchAndKeepTheShares(batchSize: Int) {
        let mix = SourceMix.muLan
        var totals: [TextSource: Int] = [:]
        let batches = 600
        for k in 0..<batches {
            let q = mix.quotas(batchSize: batchSize, batch: k)
            #expect(q.values.reduce(0, +) == batchSize)
            for (s, n) in q {
                // Within one example of the exact share in every batch.
                #expect(abs(Double(n) - Double(batchSize) * mix.shares[s]!) < 1.0 + 1e-9, "batch \(k) \(s)")
                totals[s, default: 0] += n
            }
        }
        let all = Double(batchSize * batches)
        for s in TextSource.allCases {
            #expect(abs(Double(totals[s, default: 0]) / all - mix.shares[s]!) < 1.0 / all + 1e-9)
        }
    }

    @Test func missingSourcesAreRenormalized() {
        let mix = SourceMix.muLan.restricted(to: [.tags, .playlists])
        #expect(mix.sources == [.tags, .playlists])
        #expect(abs(mix.shares[.tags]! - 2.0 / 3) < 1e-12)
        #expect(mix.quotas(batchSize: 3, batch: 0) == [.tags: 2, .playlists: 1])
    }

    @Test func retrievalRanks() {
        // 3×3: row i is audio i, column j text j.
        let s: [Float] = [0.9, 0.1, 0.95,
                          0.2, 0.8, 0.1,
                          0.3, 0.3, 0.3]
        #expect(RetrievalMetrics.diagonalRanks(s, n: 3) == [2, 1, 3])            // ties count against
        #expect(RetrievalMetrics.diagonalRanks(s, n: 3, transpose: true) == [1, 1, 2])
        // Clip 0 and 2 share their text: they do not compete.
        #expect(RetrievalMetrics.diagonalRanks(s, n: 3, groups: [0, 1, 0]) == [1, 1, 2])
        #expect(RetrievalMetrics.recall(at: 1, ranks: [1, 2, 1, 5]) == 0.5)
        #expect(RetrievalMetrics.median([4, 1, 3]) == 3)
        #expect(RetrievalMetrics.median([4, 1, 3, 2]) == 2.5)
    }

    @Test func rocAUCAndAveragePrecisionAgainstNaiveDefinitions() {
        var g = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let n = Int.random(in: 2...30, using: &g)
            // Coarse scores so that ties occur.
            let scores = (0..<n).map { _ in Float(Int.random(in: 0...6, using: &g)) / 6 }
            let labels = (0..<n).map { _ in Bool.random(using: &g) }
            let pos = scores.indices.filter { labels[$0] }, neg = scores.indices.filter { !labels[$0] }
            if pos.isEmpty || neg.isEmpty {
                #expect(RetrievalMetrics.rocAUC(scores: scores, labels: labels) == nil)
            } else {
                var wins = 0.0
                for p in pos { for q in neg { wins += scores[p] > scores[q] ? 1 : scores[p] == scores[q] ? 0.5 : 0 } }
                let auc = wins / Double(pos.count * neg.count)
                #expect(abs(RetrievalMetrics.rocAUC(scores: scores, labels: labels)! - auc) < 1e-12)
            }
            if pos.isEmpty { continue }
            // AP as scikit-learn: Σ over distinct thresholds (descending) of ΔRecall × precision.
            let thresholds = Set(scores).sorted(by: >)
            var ap = 0.0, lastRecall = 0.0
            for t in thresholds {
                let selected = scores.indices.filter { scores[$0] >= t }
                let tp = selected.filter { labels[$0] }.count
                let recall = Double(tp) / Double(pos.count)
                ap += (recall - lastRecall) * Double(tp) / Double(selected.count)
                lastRecall = recall
            }
            #expect(abs(RetrievalMetrics.averagePrecision(scores: scores, labels: labels)! - ap) < 1e-12)
        }
        #expect(RetrievalMetrics.rocAUC(scores: [0.1, 0.9], labels: [false, true]) == 1)
    }
}
