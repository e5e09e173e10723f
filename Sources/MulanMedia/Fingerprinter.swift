import Foundation

internal import CChromaprint
import MulanCore

/// Computes a raw Chromaprint fingerprint of a mono stream fed in chunks, through the library's C
/// API (`chromaprint_new`, `chromaprint_start(rate, 1)`, `chromaprint_feed` with 16-bit samples,
/// `chromaprint_finish`, `chromaprint_get_raw_fingerprint`). Ingest feeds it the samples it decodes
/// anyway, so fingerprinting costs no second decode. Never throws: a failure becomes a
/// `Fingerprint` with status `failed` and the call that failed.
public final class Fingerprinter {
    public let sampleRate: Int
    private var context: OpaquePointer?
    private var failure: String?
    private var samples = 0
    private var sumSquares = 0.0
    private var buffer: [Int16] = []

    public init(sampleRate: Int) {
        self.sampleRate = sampleRate
        context = chromaprint_new(Int32(CHROMAPRINT_ALGORITHM_DEFAULT.rawValue))
        if context == nil {
            failure = "chromaprint_new failed (out of memory?)"
        } else if chromaprint_start(context, Int32(sampleRate), 1) != 1 {
            failure = "chromaprint_start(\(sampleRate) Hz, mono) failed"
        }
    }

    deinit { if let context { chromaprint_free(context) } }

    /// Feeds float samples (full scale 1) scaled by `gain`, rounded to 16-bit with clipping, as
    /// the integer downmix of stored clips is.
    public func feed(_ chunk: UnsafeBufferPointer<Float>, gain: Float = 1) {
        guard failure == nil, chunk.count > 0 else { return }
        if buffer.count < chunk.count { buffer = [Int16](repeating: 0, count: chunk.count) }
        var squares = 0.0
        for i in chunk.indices {
            let x = chunk[i] * gain
            squares += Double(x) * Double(x)
            let scaled = (x * 32768).rounded()
            buffer[i] = scaled >= 32767 ? 32767 : (scaled <= -32768 ? -32768 : Int16(scaled))
        }
        sumSquares += squares
        samples += chunk.count
        let ok = buffer.withUnsafeBufferPointer { chromaprint_feed(context, $0.baseAddress, Int32(chunk.count)) }
        if ok != 1 { failure = "chromaprint_feed failed after \(samples - chunk.count) samples" }
    }

    /// Finishes and returns the fingerprint with its status.
    public func finish() -> Fingerprint {
        let duration = Double(samples) / Double(sampleRate)
        var result = Fingerprint(algorithm: Int(CHROMAPRINT_ALGORITHM_DEFAULT.rawValue), sampleRate: sampleRate,
                                 durationSeconds: duration, itemSeconds: 4096.0 / 3 / 11025, items: [], status: .failed)
        if let context {
            let itemSamples = chromaprint_get_item_duration(context)
            if itemSamples > 0 { result.itemSeconds = Double(itemSamples) / 11025 }
        }
        if failure == nil, chromaprint_finish(context) != 1 { failure = "chromaprint_finish failed" }
        if failure == nil {
            var raw: UnsafeMutablePointer<UInt32>?
            var size: Int32 = 0
            if chromaprint_get_raw_fingerprint(context, &raw, &size) == 1 {
                if let raw, size > 0 { result.items = Array(UnsafeBufferPointer(start: raw, count: Int(size))) }
                if let raw { chromaprint_dealloc(raw) }
            } else {
                failure = "chromaprint_get_raw_fingerprint failed"
            }
        }
        if let failure {
            result.items = []
            result.detail = failure
            return result
        }
        let rms = samples > 0 ? (sumSquares / Double(samples)).squareRoot() : 0
        let db = rms > 0 ? 20 * log10(rms) : -.infinity
        if samples > 0 && db < Fingerprint.silenceDB {
            result.status = .silent
            result.detail = db.isFinite ? String(format: "the audio's RMS level is %.1f dBFS, below %.0f dBFS", db, Fingerprint.silenceDB)
                : "the audio is digital silence"
            return result
        }
        (result.status, result.detail) = Fingerprint.judge(result.items, itemSeconds: result.itemSeconds)
        if samples == 0 { result.detail = "no audio was decoded" }
        return result
    }
}
