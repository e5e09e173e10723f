import Foundation
import MulanCatalog
import MulanCore
import MulanText

/// Corpus-wide rules (run in the catalog by `TextFilterStore`), statistics and the comparison with
/// an earlier version.
extension FilterJob {
    /// Tags: minimum frequency (distinct tracks, over the whole corpus), one copy per track, at
    /// most N per track (the most frequent in the corpus kept), with the corpus's frequency of every
    /// kept tag before these rules (`TextFilterStore.sumTagFrequencies`).
    func applyTagRules(_ store: TextFilterStore, version: String) throws {
        try store.dropRareTags(version: version, minimumTracks: config.tags.minFrequency)
        try store.dropDuplicatesPerTrack(version: version)
        // A tag that survived the rare rule kept its count: duplicates leave one copy per track.
        try store.dropTagsOverMaximumPerTrack(version: version, maximum: config.tags.maxPerTrack)
    }

    /// Playlists: size bounds (distinct member tracks over the whole corpus, from
    /// `TextFilterStore.sumGroupSizes`), one copy of a title per track.
    func applyPlaylistRules(_ store: TextFilterStore, version: String) throws {
        try store.dropPlaylistsOutsideSizes(version: version, minimumTracks: config.playlists.minTracks,
                                            maximumTracks: config.playlists.maxTracks)
        try store.dropDuplicatesPerTrack(version: version)
    }

    func collectStatistics(_ store: TextFilterStore, version: String, into report: inout FilterReport) throws {
        for row in try store.decisionCounts(version: version) {
            let n = row.texts
            report.textsTotal += n
            if row.kept {
                report.kept += n
            } else {
                report.dropped += n
                report.droppedByReason[row.reason ?? "?", default: 0] += n
            }
        }
        // Token-length distribution by SQL, so memory does not grow with the number of texts.
        let keptCount = report.kept
        if keptCount > 0 {
            func quantile(_ p: Double) throws -> Int {
                try store.keptTokenCount(version: version, atOffset: min(keptCount - 1, Int(Double(keptCount - 1) * p)))
            }
            var l = FilterReport.Lengths()
            l.min = try quantile(0)
            l.p50 = try quantile(0.5)
            l.p90 = try quantile(0.9)
            l.p99 = try quantile(0.99)
            l.max = try quantile(1)
            l.mean = try store.meanKeptTokenCount(version: version)
            for (n, count) in try store.keptTokenCountHistogram(version: version) {
                var lo = 1
                while lo * 2 <= n { lo *= 2 }
                l.histogram[n == 0 ? "0" : "\(lo)-\(lo * 2 - 1)", default: 0] += count
            }
            report.tokenLengths = l
        }
        report.topKept = try store.topKept(version: version, limit: 10)
            .map { FilterReport.Example(text: $0.text, count: $0.count, reason: nil) }
        report.topDropped = try store.topDropped(version: version, limit: 10)
            .map { FilterReport.Example(text: $0.text, count: $0.count, reason: $0.reason) }
    }

    /// How decisions of `version` differ from those of `other` (per raw text).
    func compare(_ store: TextFilterStore, version: String, with other: String?) throws -> FilterReport.Changes {
        var c = FilterReport.Changes(comparedWith: other)
        guard let other else {
            c.newTexts = try store.decisionCount(version: version)
            return c
        }
        let d = try store.differences(version: version, from: other)
        c.keptToDropped = d.keptToDropped
        c.droppedToKept = d.droppedToKept
        c.reasonChanged = d.reasonChanged
        c.newTexts = d.new
        return c
    }
}
