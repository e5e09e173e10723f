import Foundation
import MulanCatalog
import MulanCore

/// Which `mulan-filter audio` decisions a dataset honours.
public enum AudioFilterChoice: Sendable, Hashable {
    /// The version completed last (none run: every clip, as before audio filtering existed).
    case latest
    /// Ignore audio filtering.
    case none
    /// This version (it must have completed in every catalog read).
    case named(String)
}

extension ShardJob {
    /// The audio filter version to apply: the named one, or the latest completed in every catalog;
    /// nil when none applies. A version complete in only some catalogs is an error, as for text.
    func resolveAudioFilterVersion(_ parts: [Part]) throws -> String? {
        switch audioFilter {
        case .none:
            return nil
        case .named(let version):
            for part in parts where try !part.store.isCompleteAudioFilterVersion(version) {
                throw MulanError(.usage, "audio filter version \(version) does not exist or did not complete"
                                 + (parts.count > 1 ? " in \(part.directory)" : ""),
                                 hint: "list them with: sqlite3 catalog.sqlite 'select version, rules from audio_filter_versions'")
            }
            return version
        case .latest:
            var completedIn: [String: (count: Int, latest: String)] = [:]
            for part in parts {
                for (v, at) in try part.store.completedAudioFilterVersions() {
                    let previous = completedIn[v]
                    completedIn[v] = ((previous?.count ?? 0) + 1, max(previous?.latest ?? "", at))
                }
            }
            if completedIn.isEmpty { return nil }
            let everywhere = completedIn.filter { $0.value.count == parts.count }
            guard let latest = everywhere.max(by: { ($0.value.latest, $0.key) < ($1.value.latest, $1.key) }) else {
                throw MulanError(.usage, "no audio filter version is complete in every catalog read",
                                 hint: "run mulan-filter audio on every part, or pass --audio-filter-version none")
            }
            return latest.key
        }
    }
}
