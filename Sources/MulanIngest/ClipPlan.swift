import MulanCore
import MulanMedia

/// One window of a track to keep as a clip, in output samples from the start of the track (or of
/// its segment): the seeking decoder's own window type (`AudioDecoder.decodeWindows` takes a plan's
/// windows as they are). `index` is the clip's index: its grid index for grid policies (`all`,
/// `evenly`, `best`), 0 for the one window of `center` and `random`.
public typealias ClipWindow = DecodeWindow

/// The windows a policy keeps from a track of known length.
public struct ClipPlan: Sendable, Hashable {
    /// The windows, in time order.
    public var windows: [ClipWindow]
    /// Samples of a final partial grid clip shorter than `--min-clip-seconds` (grid policies only).
    public var droppedTailSamples: Int

    /// Plans `policy` on a track of `totalSamples` output samples. Nil for `best:N`, whose windows
    /// depend on the audio. No windows when the track is shorter than `--min-clip-seconds`.
    public init?(policy: ClipPolicy, totalSamples: Int, settings: IngestSettings, trackID: String) {
        let clip = settings.clipSamples
        let full = totalSamples / clip
        let tail = totalSamples - full * clip
        let tailKept = tail > 0 && tail >= settings.minClipSamples
        let candidates = full + (tailKept ? 1 : 0)
        func grid(_ i: Int) -> ClipWindow {
            ClipWindow(index: i, start: i * clip, count: min(clip, totalSamples - i * clip))
        }
        let gridTail = tailKept ? 0 : tail
        switch policy {
        case .best:
            return nil
        case .all:
            windows = (0..<candidates).map(grid)
            droppedTailSamples = gridTail
        case .evenly(let n):
            let picks = candidates <= n ? Array(0..<candidates) : ClipCutter.evenlySpaced(n, of: candidates).sorted()
            windows = picks.map(grid)
            droppedTailSamples = gridTail
        case .center, .random:
            droppedTailSamples = 0
            if totalSamples < settings.minClipSamples || totalSamples <= 0 {
                windows = []
            } else if totalSamples <= clip {
                windows = [ClipWindow(index: 0, start: 0, count: totalSamples)]
            } else {
                let slack = totalSamples - clip
                let start = policy == .center ? slack / 2
                    : Self.randomStart(slack: slack, seed: settings.clipSeed, trackID: trackID)
                windows = [ClipWindow(index: 0, start: start, count: clip)]
            }
        }
    }

    /// A start in [0, slack], uniform, from SplitMix64 seeded by `seed` and the track id's FNV-1a
    /// hash: the same on every platform and in every process (Swift's `Hasher` is not).
    public static func randomStart(slack: Int, seed: UInt64, trackID: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in trackID.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        var generator = SplitMix64(seed: seed ^ hash)
        _ = generator.next()  // decorrelate nearby seeds
        return Int(generator.uniform() * Double(slack + 1))
    }
}
