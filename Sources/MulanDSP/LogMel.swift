internal import CMulanFFmpeg
import MulanCore
#if canImport(Glibc)
import Glibc
#endif

/// Parameters of the log-mel front end. The defaults are a 25 ms Hann window, a 10 ms hop, an FFT
/// of the next power of two, 128 Slaney mel bands from 0 Hz to Nyquist, and decibels floored at
/// `amin` and clamped to 80 dB below the maximum (at 16 kHz: window 400, hop 160, FFT 512, as TTMR).
public struct LogMelConfig: Sendable, Equatable, Codable {
    /// Sample rate of the input audio, in Hz.
    public var sampleRate: Int
    /// Window length in seconds; in samples `round(windowSeconds · sampleRate)`.
    public var windowSeconds: Double
    /// Hop between frames in seconds; in samples `round(hopSeconds · sampleRate)`.
    public var hopSeconds: Double
    /// FFT length in samples (≥ the window length; the window is zero-padded to it, centred).
    public var fftSize: Int
    public var melBands: Int
    /// Lowest and highest frequency of the mel filterbank, in Hz; `fMax` nil means `sampleRate / 2`.
    public var fMin: Double
    public var fMax: Double?
    /// The power floor before taking decibels (`librosa.power_to_db`'s `amin`).
    public var amin: Float
    /// Clamp to this many dB below the maximum of each spectrogram; nil leaves values unclamped.
    public var topDB: Float?
    /// How mel powers become features: decibels (the default; `amin` and `topDB` apply) or musicnn's
    /// compression.
    public var scale: LogMelScale = .decibels

    /// musicnn's front end (musicnn 0.1.0, `extractor.batch_data`): 16 kHz, a 512-sample Hann window
    /// and FFT, hop 256, 96 Slaney bands from 0 Hz to Nyquist, power 2, then log10(10000·x + 1).
    public static let musicnn = LogMelConfig(sampleRate: 16000, windowSeconds: 0.032, hopSeconds: 0.016, fftSize: 512,
                                             melBands: 96, scale: .log10Compressed)

    /// `fftSize` nil takes the next power of two ≥ the window length.
    public init(sampleRate: Int, windowSeconds: Double = 0.025, hopSeconds: Double = 0.010, fftSize: Int? = nil,
                melBands: Int = 128, fMin: Double = 0, fMax: Double? = nil, amin: Float = 1e-10, topDB: Float? = 80,
                scale: LogMelScale = .decibels) {
        self.sampleRate = sampleRate
        self.windowSeconds = windowSeconds
        self.hopSeconds = hopSeconds
        self.fftSize = fftSize ?? Self.defaultFFTSize(windowLength: Self.samples(windowSeconds, sampleRate))
        self.melBands = melBands
        self.fMin = fMin
        self.fMax = fMax
        self.amin = amin
        self.topDB = topDB
        self.scale = scale
    }

    /// The window length in samples. Seconds are rounded to samples half to even, as Python's
    /// `round` does (0.01 s at 22,050 Hz is a hop of 220 samples).
    public var windowLength: Int { Self.samples(windowSeconds, sampleRate) }
    /// The hop in samples (rounded as `windowLength`).
    public var hopLength: Int { Self.samples(hopSeconds, sampleRate) }
    /// The upper edge of the filterbank in Hz.
    public var resolvedFMax: Double { fMax ?? Double(sampleRate) / 2 }

    /// The smallest power of two ≥ `windowLength` (1 for an empty window).
    public static func defaultFFTSize(windowLength: Int) -> Int {
        var n = 1
        while n < windowLength && n < (1 << 30) { n <<= 1 }
        return n
    }

    static func samples(_ seconds: Double, _ rate: Int) -> Int {
        let x = (seconds * Double(rate)).rounded(.toNearestOrEven)
        guard x.isFinite, abs(x) < 1e15 else { return 0 }
        return Int(x)
    }

    // Decoding takes a missing key as its default (a missing `fftSize` as the next power of two,
    // a missing `topDB` as 80 dB); an explicit `null` for `fMax` or `topDB` means none.
    enum CodingKeys: String, CodingKey {
        case sampleRate, windowSeconds, hopSeconds, fftSize, melBands, fMin, fMax, amin, topDB, scale
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = LogMelConfig(sampleRate: try c.decode(Int.self, forKey: .sampleRate))
        self.init(sampleRate: defaults.sampleRate,
                  windowSeconds: try c.decodeIfPresent(Double.self, forKey: .windowSeconds) ?? defaults.windowSeconds,
                  hopSeconds: try c.decodeIfPresent(Double.self, forKey: .hopSeconds) ?? defaults.hopSeconds,
                  fftSize: try c.decodeIfPresent(Int.self, forKey: .fftSize),
                  melBands: try c.decodeIfPresent(Int.self, forKey: .melBands) ?? defaults.melBands,
                  fMin: try c.decodeIfPresent(Double.self, forKey: .fMin) ?? defaults.fMin,
                  fMax: try c.decodeIfPresent(Double.self, forKey: .fMax),
                  amin: try c.decodeIfPresent(Float.self, forKey: .amin) ?? defaults.amin,
                  topDB: c.contains(.topDB) ? try c.decodeIfPresent(Float.self, forKey: .topDB) : defaults.topDB,
                  scale: try c.decodeIfPresent(LogMelScale.self, forKey: .scale) ?? .decibels)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sampleRate, forKey: .sampleRate)
        try c.encode(windowSeconds, forKey: .windowSeconds)
        try c.encode(hopSeconds, forKey: .hopSeconds)
        try c.encode(fftSize, forKey: .fftSize)
        try c.encode(melBands, forKey: .melBands)
        try c.encode(fMin, forKey: .fMin)
        try c.encode(fMax, forKey: .fMax)      // null when nil
        try c.encode(amin, forKey: .amin)
        try c.encode(topDB, forKey: .topDB)    // null when nil
        // Omitted when decibels, so configurations from before the key existed encode unchanged.
        if scale != .decibels { try c.encode(scale, forKey: .scale) }
    }
}

/// The compression of mel powers into features.
public enum LogMelScale: String, Sendable, Equatable, Codable {
    /// `10 · log10(max(amin, x))`, clamped to `topDB` below the spectrogram's maximum (librosa's
    /// `power_to_db`).
    case decibels = "dB"
    /// musicnn's `log10(10000 · x + 1)`, computed in double precision on the float power. (musicnn's
    /// extractor computes it in float16, which quantizes the result to about 1e-3 and overflows to
    /// infinity for x ≥ 6.55; that is not copied.) `amin` and `topDB` do not apply.
    case log10Compressed = "log10(10000x+1)"
}

/// A log-mel spectrogram calculator: the same numbers as
///
///     librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=fftSize, hop_length=hop,
///         win_length=win, window='hann', center=True, pad_mode='constant', power=2.0, n_mels=melBands,
///         fmin=fMin, fmax=fMax, htk=False, norm='slaney'), ref=1.0, amin=amin, top_db=topDB)
///
/// (librosa 0.11), to float rounding. Frame `t` is centred on sample `t · hop` of the input padded
/// with `fftSize / 2` zeros on each side; the periodic Hann window of the window length is
/// zero-padded, centred, to the FFT length; power spectra go through a Slaney-scale,
/// Slaney-normalized mel filterbank (`librosa.filters.mel`) stored sparsely, one range of FFT bins
/// per band; then `10 · log10(max(amin, power))`, clamped to `topDB` below the maximum.
///
/// The FFT is libavutil's `av_tx`: a real-input transform (`AV_TX_FLOAT_RDFT`) when the FFT
/// length is a multiple of 4, and otherwise a complex one (`AV_TX_FLOAT_FFT`) fed a zero imaginary
/// part, because FFmpeg 5.1's RDFT gives wrong results for lengths of the form 4k + 2 (and cannot
/// do odd ones).
///
/// Not thread-safe: an instance keeps its FFT context and scratch buffers and reuses them on every
/// call. Use one instance per thread (instances are cheap: a few tables of the FFT length).
public final class LogMelSpectrogram {
    public let config: LogMelConfig
    public let windowLength: Int
    public let hopLength: Int
    public let fftSize: Int
    public var melBands: Int { config.melBands }

    private var tx: OpaquePointer?
    private let transform: av_tx_fn
    private let complexInput: Bool
    /// FFT input (fftSize floats, or 2·fftSize for the complex transform) and output, from av_malloc
    /// (aligned as av_tx requires).
    private let input: UnsafeMutablePointer<Float>
    private let output: UnsafeMutablePointer<Float>
    private let window: UnsafeMutablePointer<Float>
    /// Power spectra of `block` consecutive frames, [bins × block], and their mel values,
    /// [melBands × block]: frames go through the filterbank together, and out band by band so that
    /// stores to the row-major result are contiguous.
    private let powerBlock: UnsafeMutablePointer<Float>
    private let melBlock: UnsafeMutablePointer<Float>
    private static let block = 16
    /// Band m weighs power bins `bandStart[m] ..< bandStart[m] + bandCount[m]` with
    /// `weights[bandOffset[m] ..< bandOffset[m] + bandCount[m]]`.
    private let bandStart: UnsafeMutablePointer<Int>
    private let bandCount: UnsafeMutablePointer<Int>
    private let bandOffset: UnsafeMutablePointer<Int>
    private let weights: UnsafeMutablePointer<Float>

    public init(config: LogMelConfig) throws(MulanError) {
        let win = config.windowLength, hop = config.hopLength, n = config.fftSize
        func invalid(_ what: String) -> MulanError {
            MulanError(.usage, "invalid log-mel configuration: \(what)",
                       hint: "fix the logMel settings (sampleRate \(config.sampleRate) Hz, window \(win), hop \(hop), FFT \(n))")
        }
        guard config.sampleRate > 0 else { throw invalid("the sample rate must be positive") }
        guard win >= 1 else { throw invalid("the window must be at least one sample") }
        guard hop >= 1 else { throw invalid("the hop must be at least one sample") }
        guard n >= win else { throw invalid("the FFT length \(n) is shorter than the window (\(win) samples)") }
        guard n <= 1 << 22 else { throw invalid("the FFT length \(n) is too large") }
        guard config.melBands >= 1, config.melBands <= 10_000 else { throw invalid("melBands must be between 1 and 10000") }
        let fMax = config.resolvedFMax
        guard config.fMin.isFinite, fMax.isFinite, config.fMin >= 0, config.fMin < fMax else {
            throw invalid("the mel filterbank needs 0 ≤ fMin < fMax (fMin \(config.fMin), fMax \(fMax))")
        }
        guard config.amin.isFinite, config.amin >= Float.leastNormalMagnitude else {
            throw invalid("amin must be a positive normal float (≥ 1.2e-38)")
        }
        if let top = config.topDB { guard top.isFinite, top >= 0 else { throw invalid("topDB must be non-negative") } }

        // The transform.
        let complexInput = n % 4 != 0
        var context: OpaquePointer?
        var function: av_tx_fn?
        var scale: Float = 1   // av_tx dereferences the scale of an RDFT: never pass NULL
        let ret = av_tx_init(&context, &function, complexInput ? AV_TX_FLOAT_FFT : AV_TX_FLOAT_RDFT, 0,
                             Int32(n), &scale, 0)
        guard ret >= 0, let context, let function else {
            av_tx_uninit(&context)
            throw MulanError(.media, "libavutil cannot set up an FFT of length \(n)",
                             hint: "choose another fftSize (a power of two is fastest)", cause: LibraryError("FFmpeg", code: ret, "av_tx_init returned \(ret)"))
        }

        self.config = config
        windowLength = win
        hopLength = hop
        fftSize = n
        tx = context
        transform = function
        self.complexInput = complexInput

        func buffer<T>(_ type: T.Type, _ count: Int) -> UnsafeMutablePointer<T> {
            UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
        }
        let floats = complexInput ? 2 * n : n + 2
        // av_malloc aligns as the CPU's widest vectors need; the pointers cannot be nil for these
        // sizes unless memory is exhausted, which Swift treats as fatal everywhere else too.
        guard let inRaw = av_mallocz(floats * MemoryLayout<Float>.size),
              let outRaw = av_mallocz(floats * MemoryLayout<Float>.size) else {
            preconditionFailure("out of memory allocating FFT buffers")
        }
        input = inRaw.bindMemory(to: Float.self, capacity: floats)
        output = outRaw.bindMemory(to: Float.self, capacity: floats)

        // Periodic Hann window (scipy.signal.get_window('hann', win, fftbins=True)).
        window = buffer(Float.self, win)
        for i in 0..<win {
            window[i] = Float(0.5 - 0.5 * cos(2 * Double.pi * Double(i) / Double(win)))
        }
        let bins = n / 2 + 1
        powerBlock = buffer(Float.self, bins * Self.block)
        powerBlock.initialize(repeating: 0, count: bins * Self.block)
        melBlock = buffer(Float.self, config.melBands * Self.block)

        // Sparse Slaney mel filterbank.
        let filters = Self.melFilters(sampleRate: config.sampleRate, fftSize: n, melBands: config.melBands,
                                      fMin: config.fMin, fMax: fMax)
        let m = config.melBands
        bandStart = buffer(Int.self, m)
        bandCount = buffer(Int.self, m)
        bandOffset = buffer(Int.self, m)
        var flat: [Float] = []
        for (band, filter) in filters.enumerated() {
            bandStart[band] = filter.start
            bandCount[band] = filter.weights.count
            bandOffset[band] = flat.count
            flat.append(contentsOf: filter.weights)
        }
        weights = buffer(Float.self, flat.count)
        for (i, w) in flat.enumerated() { weights[i] = w }
    }

    deinit {
        av_tx_uninit(&tx)
        av_free(input)
        av_free(output)
        window.deallocate()
        powerBlock.deallocate()
        melBlock.deallocate()
        bandStart.deallocate()
        bandCount.deallocate()
        bandOffset.deallocate()
        weights.deallocate()
    }

    /// Frames for `sampleCount` input samples: `1 + sampleCount / hop` for an even FFT length
    /// (librosa's count with `center=True`); 0 when the padded input is shorter than the FFT.
    public func frameCount(sampleCount: Int) -> Int {
        let padded = sampleCount + 2 * (fftSize / 2)
        return padded < fftSize ? 0 : 1 + (padded - fftSize) / hopLength
    }

    /// The log-mel spectrogram of `samples` (mono, at `config.sampleRate`), row-major
    /// [melBands × frames]: `values[band * frames + frame]`, in dB. Input samples should be finite
    /// (non-finite ones give meaningless but finite values; decoders replace them by 0).
    public func compute(_ samples: UnsafeBufferPointer<Float>) -> (values: [Float], frames: Int) {
        let frames = frameCount(sampleCount: samples.count)
        let m = config.melBands
        guard frames > 0, let x = samples.baseAddress else { return ([], frames) }
        let block = Self.block
        let values = [Float](unsafeUninitializedCapacity: m * frames) { out, initialized in
            guard let base = out.baseAddress else { initialized = 0; return }
            let amin = config.amin
            let compressed = config.scale == .log10Compressed
            var largest = -Float.infinity
            for first in stride(from: 0, to: frames, by: block) {
                let n = min(block, frames - first)
                for j in 0..<n { powerSpectrum(frame: first + j, x, samples.count, column: j) }
                melBlockFromPowers()
                if compressed {
                    for band in 0..<m {
                        let row = base + band * frames + first, mel = melBlock + band * block
                        for j in 0..<n { row[j] = Self.musicnnCompression(mel[j]) }
                    }
                    continue
                }
                for band in 0..<m {
                    let row = base + band * frames + first, mel = melBlock + band * block
                    for j in 0..<block { mel[j] = Self.decibels(max(amin, mel[j])) }
                    for j in 0..<n {
                        row[j] = mel[j]
                        if mel[j] > largest { largest = mel[j] }
                    }
                }
            }
            if !compressed, let topDB = config.topDB {
                let floor = largest - topDB
                for i in 0..<(m * frames) where base[i] < floor { base[i] = floor }
            }
            initialized = m * frames
        }
        return (values, frames)
    }

    public func compute(_ samples: [Float]) -> (values: [Float], frames: Int) {
        samples.withUnsafeBufferPointer { compute($0) }
    }

    /// The power spectrum of frame `t` into column `column` of `powerBlock` ([bins × block]).
    @inline(__always)
    private func powerSpectrum(frame t: Int, _ x: UnsafePointer<Float>, _ count: Int, column: Int) {
        let n = fftSize, win = windowLength
        let lead = (n - win) / 2                 // zeros before the window (librosa's pad_center)
        let first = t * hopLength - n / 2 + lead // input index under window[0]
        let bins = n / 2 + 1
        if complexInput {
            input.update(repeating: 0, count: 2 * n)
            for i in 0..<win {
                let s = first + i
                if s >= 0 && s < count { input[2 * (lead + i)] = window[i] * x[s] }
            }
        } else {
            input.update(repeating: 0, count: lead)
            (input + lead + win).update(repeating: 0, count: n - lead - win)
            let dst = input + lead
            if first >= 0 && first + win <= count {
                let src = x + first
                for i in 0..<win { dst[i] = window[i] * src[i] }
            } else {
                for i in 0..<win {
                    let s = first + i
                    dst[i] = s >= 0 && s < count ? window[i] * x[s] : 0
                }
            }
        }
        transform(tx, output, input, complexInput ? 2 * MemoryLayout<Float>.size : MemoryLayout<Float>.size)
        // Bins 0 … n/2 as (re, im) pairs. FFmpeg 5.1's RDFT leaves the imaginary part of the
        // Nyquist bin unwritten; it is zero for real input, so only its real part is used.
        let block = Self.block
        let p = powerBlock + column
        for k in 0..<(bins - 1) {
            let re = output[2 * k], im = output[2 * k + 1]
            p[k * block] = re * re + im * im
        }
        let re = output[2 * (bins - 1)], im = complexInput ? output[2 * (bins - 1) + 1] : 0
        p[(bins - 1) * block] = re * re + im * im
    }

    /// Mel values of the frames in `powerBlock` into `melBlock` ([melBands × block]): the inner
    /// loop runs over the block's frames, a fixed count that vectorizes.
    @inline(__always)
    private func melBlockFromPowers() {
        let block = Self.block
        for band in 0..<config.melBands {
            let mel = melBlock + band * block
            mel.update(repeating: 0, count: block)
            let w = weights + bandOffset[band]
            let p = powerBlock + bandStart[band] * block
            for j in 0..<bandCount[band] {
                let weight = w[j], column = p + j * block
                for f in 0..<block { mel[f] += weight * column[f] }
            }
        }
    }

    /// musicnn's `log10(10000 · x + 1)` (see `LogMelScale.log10Compressed`), in double precision.
    @inline(__always)
    static func musicnnCompression(_ x: Float) -> Float {
        Float(log10(10000 * Double(max(x, 0)) + 1))
    }

    /// `10 · log10(x)` for a positive normal float, within 2 ulps of the exact value (1.5e-5 dB
    /// below ±128 dB; `LogMelTests.decibelsAreAccurate` checks all exponents): x = m · 2^e with m in
    /// [√½, √2), ln m = 2 atanh(s) with s = (m − 1) / (m + 1), |s| ≤ 0.172, summed to s⁹ (truncation
    /// below 3e-9). Branch-free, so that loops over it vectorize (glibc's log10f is a call per value).
    @inline(__always)
    static func decibels(_ x: Float) -> Float {
        let bits = x.bitPattern
        // Shift the mantissa so that m falls in [√½, √2): 0x3F35_04F3 is √½'s bit pattern.
        let offset = bits &- 0x3F35_04F3
        let e = Float(Int32(bitPattern: offset) >> 23)
        let m = Float(bitPattern: (offset & 0x007F_FFFF) &+ 0x3F35_04F3)
        let s = (m - 1) / (m + 1)
        let s2 = s * s
        let series = 1 + s2 * (1 / 3 + s2 * (1 / 5 + s2 * (1 / 7 + s2 * (1 / 9))))
        let lnM = 2 * s * series
        // ln 2 split in two so that e · ln 2 keeps its precision (Cephes' constants).
        let ln = e * 0.693_145_751_953_125 + (e * 1.428_606_765_330_187e-6 + lnM)
        return ln * 4.342_944_819_032_518   // 10 / ln 10
    }

    /// The Slaney mel filterbank as `librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=,
    /// htk=False, norm='slaney')` computes it (in double precision, stored as float), band by band:
    /// the first FFT bin of the band's nonzero weights, and those weights (none for a band narrower
    /// than the bin spacing that falls between two bins).
    static func melFilters(sampleRate: Int, fftSize: Int, melBands: Int, fMin: Double,
                           fMax: Double) -> [(start: Int, weights: [Float])] {
        let bins = fftSize / 2 + 1
        let step = 1.0 / (Double(fftSize) * (1.0 / Double(sampleRate)))  // numpy.fft.rfftfreq
        let melLow = hzToMel(fMin), melHigh = hzToMel(fMax)
        let points = melBands + 2
        let melDelta = (melHigh - melLow) / Double(points - 1)        // numpy.linspace
        let melF: [Double] = (0..<points).map { i in
            melToHz(i == points - 1 ? melHigh : melLow + Double(i) * melDelta)
        }
        return (0..<melBands).map { band in
            let lowerWidth = melF[band + 1] - melF[band]
            let upperWidth = melF[band + 2] - melF[band + 1]
            let enorm = 2.0 / (melF[band + 2] - melF[band])
            // Weights are zero outside (melF[band], melF[band + 2]); look one bin beyond each edge.
            let edges = (min(melF[band] / step, Double(bins)), min(melF[band + 2] / step, Double(bins)))
            let from = max(0, Int(edges.0.rounded(.down)) - 1)
            let to = min(bins - 1, Int(edges.1.rounded(.up)) + 1)
            guard from <= to else { return (0, []) }
            var start = 0
            var weights: [Float] = []
            for k in from...to {
                let frequency = Double(k) * step
                let lower = -(melF[band] - frequency) / lowerWidth
                let upper = (melF[band + 2] - frequency) / upperWidth
                let w = Float(Double(Float(max(0, min(lower, upper)))) * enorm)
                if w != 0 {
                    if weights.isEmpty { start = k }
                    weights.append(w)
                } else if !weights.isEmpty {
                    break   // a triangle: its nonzero weights are contiguous
                }
            }
            return (start, weights)
        }
    }

    // Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
    static let melLinearStep = 200.0 / 3
    static let melLogStart = 1000.0 / melLinearStep
    static let melLogStep = log(6.4) / 27

    static func hzToMel(_ f: Double) -> Double {
        f >= 1000 ? melLogStart + log(f / 1000) / melLogStep : f / melLinearStep
    }

    static func melToHz(_ mel: Double) -> Double {
        mel >= melLogStart ? 1000 * exp(melLogStep * (mel - melLogStart)) : melLinearStep * mel
    }
}

/// SpecAugment's masking policy (Park et al., 2019, "SpecAugment: A Simple Data Augmentation Method
/// for Automatic Speech Recognition"; no time warping). The defaults suit 128 mel bands at 100
/// frames per second: two frequency masks of up to 15 bands and two time masks of up to 50 frames
/// (0.5 s), each at most the whole input (`maxTimeFraction` is the paper's p).
public struct SpecAugmentConfig: Sendable, Equatable, Codable {
    public var frequencyMasks: Int
    /// F: a frequency mask covers f bands, f uniform in 0…F.
    public var maxFrequencyWidth: Int
    public var timeMasks: Int
    /// T: a time mask covers t frames, t uniform in 0…min(T, ⌊p · frames⌋).
    public var maxTimeWidth: Int
    /// p: the largest share of the frames one time mask may cover.
    public var maxTimeFraction: Double

    public init(frequencyMasks: Int = 2, maxFrequencyWidth: Int = 15, timeMasks: Int = 2, maxTimeWidth: Int = 50,
                maxTimeFraction: Double = 1) {
        self.frequencyMasks = frequencyMasks
        self.maxFrequencyWidth = maxFrequencyWidth
        self.timeMasks = timeMasks
        self.maxTimeWidth = maxTimeWidth
        self.maxTimeFraction = maxTimeFraction
    }

    /// No masks: `apply` leaves values unchanged.
    public static let none = SpecAugmentConfig(frequencyMasks: 0, timeMasks: 0)

    enum CodingKeys: String, CodingKey {
        case frequencyMasks, maxFrequencyWidth, timeMasks, maxTimeWidth, maxTimeFraction
    }

    /// Missing keys take their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SpecAugmentConfig()
        self.init(frequencyMasks: try c.decodeIfPresent(Int.self, forKey: .frequencyMasks) ?? d.frequencyMasks,
                  maxFrequencyWidth: try c.decodeIfPresent(Int.self, forKey: .maxFrequencyWidth) ?? d.maxFrequencyWidth,
                  timeMasks: try c.decodeIfPresent(Int.self, forKey: .timeMasks) ?? d.timeMasks,
                  maxTimeWidth: try c.decodeIfPresent(Int.self, forKey: .maxTimeWidth) ?? d.maxTimeWidth,
                  maxTimeFraction: try c.decodeIfPresent(Double.self, forKey: .maxTimeFraction) ?? d.maxTimeFraction)
    }
}

/// Frequency and time masking of a log-mel spectrogram (row-major [melBands × frames]).
///
/// Each frequency mask draws a width f uniformly from 0…min(F, melBands), then a first band
/// uniformly from 0…melBands − f, and covers those bands in every frame; each time mask likewise
/// draws t from 0…min(T, ⌊p · frames⌋, frames) and a first frame from 0…frames − t. Frequency
/// masks are drawn first, in order, then time masks; masks may overlap. Masked cells are set to
/// the mean of the whole spectrogram before masking (Park et al. fill with zero after normalizing
/// to zero mean, which is the same thing for an unnormalized spectrogram). The same generator
/// state gives the same masks.
public struct SpecAugment: Sendable {
    public var config: SpecAugmentConfig

    public init(_ config: SpecAugmentConfig = SpecAugmentConfig()) {
        self.config = config
    }

    /// Which bands and frames a call of `apply` masks.
    public struct Masks: Sendable, Equatable {
        public var frequency: [Range<Int>]
        public var time: [Range<Int>]
    }

    /// Draws the masks for a [melBands × frames] spectrogram.
    public func masks(melBands: Int, frames: Int, random: inout some RandomNumberGenerator) -> Masks {
        func draw(_ count: Int, width: Int, extent: Int) -> [Range<Int>] {
            guard extent > 0 else { return [] }
            var ranges: [Range<Int>] = []
            let widest = min(max(width, 0), extent)
            for _ in 0..<max(count, 0) {
                let w = Int(random.next(upperBound: UInt64(widest + 1)))
                let start = Int(random.next(upperBound: UInt64(extent - w + 1)))
                ranges.append(start..<(start + w))
            }
            return ranges
        }
        let fraction = config.maxTimeFraction.isFinite ? min(max(config.maxTimeFraction, 0), 1) : 1
        let timeLimit = min(config.maxTimeWidth, Int((fraction * Double(max(frames, 0))).rounded(.down)))
        let frequency = draw(config.frequencyMasks, width: config.maxFrequencyWidth, extent: melBands)
        let time = draw(config.timeMasks, width: timeLimit, extent: frames)
        return Masks(frequency: frequency, time: time)
    }

    /// Masks `values` ([melBands × frames], row-major) in place, drawing from `random`.
    public func apply(to values: inout [Float], melBands: Int, frames: Int, random: inout some RandomNumberGenerator) {
        guard config.frequencyMasks > 0 || config.timeMasks > 0 else { return }
        let masks = masks(melBands: melBands, frames: frames, random: &random)
        Self.apply(masks, to: &values, melBands: melBands, frames: frames)
    }

    /// Sets the cells of `masks` to the mean of `values`.
    public static func apply(_ masks: Masks, to values: inout [Float], melBands: Int, frames: Int) {
        precondition(values.count == melBands * frames, "values must hold melBands × frames numbers")
        guard !values.isEmpty, !masks.frequency.isEmpty || !masks.time.isEmpty else { return }
        var sum = 0.0
        for v in values { sum += Double(v) }
        let mean = Float(sum / Double(values.count))
        values.withUnsafeMutableBufferPointer { v in
            for band in masks.frequency {
                for row in band.clamped(to: 0..<melBands) {
                    for t in 0..<frames { v[row * frames + t] = mean }
                }
            }
            for span in masks.time {
                let columns = span.clamped(to: 0..<frames)
                for row in 0..<melBands {
                    for t in columns { v[row * frames + t] = mean }
                }
            }
        }
    }
}
