internal import CMulanFFmpeg
import Foundation
import MulanCore

/// Mono 32-bit float samples and their rate.
public struct DecodedAudio: Sendable, Equatable {
    public var samples: [Float]
    public var sampleRate: Int

    public init(samples: [Float], sampleRate: Int) {
        self.samples = samples
        self.sampleRate = sampleRate
    }
}

/// Decodes an audio file held in memory (such as a `.flac` member of a WebDataset shard) to mono
/// float, with the same demuxing, decoding, downmixing and resampling as `AudioDecoder`
/// (libavformat reads the bytes through a custom `AVIOContext`), so the samples equal
/// `ffmpeg -i FILE -ac 1 [-ar RATE] -f f32le -` bit for bit.
///
/// Stricter than `AudioDecoder` about damage, since a training example must be whole: any packet
/// that fails to decode, or a FLAC stream shorter than its STREAMINFO header says, is an error.
/// Safe to call from several threads at once (every call has its own FFmpeg contexts).
public enum MemoryAudioDecoder {
    /// Decodes `bytes`; `label` names them in errors (for example "shard-000003.tar member
    /// 0001.flac"). `sampleRate` nil keeps the stream's own rate, otherwise libswresample converts
    /// to it. `strict` also checks checksums (FLAC frame CRCs) and fails on any damaged frame
    /// instead of concealing it.
    public static func decode(_ bytes: some ContiguousBytes, label: String, sampleRate: Int? = nil,
                              strict: Bool = false) throws(MulanError) -> DecodedAudio {
        let result = bytes.withUnsafeBytes { raw in
            decodeBuffer(raw, label: label, sampleRate: sampleRate, strict: strict)
        }
        switch result {
        case .success(let audio): return audio
        case .failure(let error): throw error
        }
    }

    private static func failure(_ label: String, _ what: String, cause: (any Error)? = nil) -> MulanError {
        MulanError(.media, "cannot decode the audio of \(label): \(what)",
                   hint: "the bytes are damaged or not audio; rebuild or re-download the data that holds them",
                   cause: cause)
    }

    private static func decodeBuffer(_ raw: UnsafeRawBufferPointer, label: String, sampleRate: Int?,
                                     strict: Bool) -> Result<DecodedAudio, MulanError> {
        if let sampleRate, sampleRate <= 0 {
            return .failure(MulanError(.usage, "cannot decode \(label) to \(sampleRate) Hz: the sample rate must be positive"))
        }
        guard raw.count > 0, let base = raw.baseAddress else { return .failure(failure(label, "it is empty (0 bytes)")) }
        guard let input = MemoryInput(base: base, count: raw.count), let io = input.context,
              var fmt = avformat_alloc_context() else {
            return .failure(failure(label, "out of memory setting up FFmpeg"))
        }
        fmt.pointee.pb = io
        fmt.pointee.flags |= AVFMT_FLAG_CUSTOM_IO
        // No demuxer may open further resources (playlists, concat lists): the bytes are all there is.
        var options: OpaquePointer?
        av_dict_set(&options, "protocol_whitelist", "none", 0)
        var opened: UnsafeMutablePointer<AVFormatContext>? = fmt
        let ret = avformat_open_input(&opened, nil, nil, &options)   // frees the context on failure
        av_dict_free(&options)
        guard ret >= 0, let opened else {
            return .failure(failure(label, "FFmpeg does not recognize it as media", cause: LibraryError("FFmpeg", code: ret, averrorText(ret))))
        }
        fmt = opened

        let decoder: AudioDecoder
        do {
            decoder = try AudioDecoder(opened: fmt, name: label, outputSampleRate: sampleRate, strict: strict, input: input)
        } catch {
            return .failure(MulanError(.media, "cannot decode the audio of \(label)",
                                       hint: "the bytes are damaged or not audio; rebuild or re-download the data that holds them",
                                       cause: error))
        }
        let rate = decoder.outputSampleRate
        var samples: [Float] = []
        if let seconds = decoder.probe.durationSeconds, seconds.isFinite, seconds > 0, seconds < 86_400 {
            samples.reserveCapacity(Int(seconds * Double(rate)) + 1024)
        }
        let stats: DecodeStats
        do {
            stats = try decoder.decode { chunk in
                samples.append(contentsOf: chunk)
                return true
            }
        } catch let error as TrackFailure {
            return .failure(failure(label, "decoding stopped", cause: error))
        } catch {
            return .failure(failure(label, "\(error)"))
        }
        if let readError = stats.readError {
            return .failure(failure(label, "reading stopped after \(samples.count) samples", cause: LibraryError("FFmpeg", readError)))
        }
        if stats.decodeErrors > 0 {
            return .failure(failure(label, "\(stats.decodeErrors) of \(stats.packets) packets failed to decode"))
        }
        if samples.isEmpty {
            return .failure(failure(label, "it holds no audio samples"))
        }
        // FLAC's STREAMINFO states the exact sample count: a stream cut at a frame boundary decodes
        // without error, but shorter.
        if decoder.probe.codec == "flac", decoder.probe.durationIsExact, let seconds = decoder.probe.durationSeconds {
            let expected = seconds * Double(rate)
            if Double(samples.count) < expected - 2 {
                return .failure(failure(label, "it is truncated: \(samples.count) samples of the \(Int(expected.rounded())) "
                                        + "its header states (at \(rate) Hz)"))
            }
        }
        return .success(DecodedAudio(samples: samples, sampleRate: rate))
    }
}

/// Custom I/O for libavformat over bytes in memory: an `AVIOContext` whose read and seek callbacks
/// serve `base[0 ..< count]`. The bytes must outlive this object, and this object must outlive the
/// format context reading through it.
final class MemoryInput {
    private let base: UnsafeRawPointer
    private let count: Int
    private var position = 0
    private(set) var context: UnsafeMutablePointer<AVIOContext>?

    init?(base: UnsafeRawPointer, count: Int) {
        self.base = base
        self.count = count
        let size: Int32 = 32 * 1024
        guard let buffer = av_malloc(Int(size)) else { return nil }
        let opaque = Unmanaged.passUnretained(self).toOpaque()
        context = avio_alloc_context(
            buffer.assumingMemoryBound(to: UInt8.self), size, 0, opaque,
            { opaque, buffer, size in MemoryInput.read(opaque, buffer, size) },
            nil,
            { opaque, offset, whence in MemoryInput.seek(opaque, offset, whence) })
        if context == nil {
            av_free(buffer)
            return nil
        }
    }

    deinit {
        // libavformat may have replaced the buffer given to avio_alloc_context: free the current one.
        if let context { av_freep(&context.pointee.buffer) }
        avio_context_free(&context)
    }

    private static func read(_ opaque: UnsafeMutableRawPointer?, _ buffer: UnsafeMutablePointer<UInt8>?,
                             _ size: Int32) -> Int32 {
        guard let opaque, let buffer else { return mulan_averror(EINVAL) }
        let input = Unmanaged<MemoryInput>.fromOpaque(opaque).takeUnretainedValue()
        let n = min(Int(max(size, 0)), input.count - input.position)
        if n <= 0 { return mulan_averror_eof() }
        UnsafeMutableRawPointer(buffer).copyMemory(from: input.base + input.position, byteCount: n)
        input.position += n
        return Int32(n)
    }

    private static func seek(_ opaque: UnsafeMutableRawPointer?, _ offset: Int64, _ whence: Int32) -> Int64 {
        guard let opaque else { return Int64(mulan_averror(EINVAL)) }
        let input = Unmanaged<MemoryInput>.fromOpaque(opaque).takeUnretainedValue()
        if whence & AVSEEK_SIZE != 0 { return Int64(input.count) }
        let target: Int64
        switch whence & ~AVSEEK_FORCE {
        case SEEK_SET: target = offset
        case SEEK_CUR: target = Int64(input.position) &+ offset
        case SEEK_END: target = Int64(input.count) &+ offset
        default: return Int64(mulan_averror(EINVAL))
        }
        guard target >= 0, target <= Int64(input.count) else { return Int64(mulan_averror(EINVAL)) }
        input.position = Int(target)
        return target
    }
}
