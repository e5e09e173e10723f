import Foundation
import MulanCore
import MulanTensor
import MulanText

/// The architecture fields of a Hugging Face BERT `config.json` that the text tower needs.
public struct BertConfig: Sendable, Equatable {
    /// `vocab_size`: rows of the word embeddings.
    public var vocabularySize: Int
    /// `hidden_size`.
    public var hiddenSize: Int
    /// `num_hidden_layers`.
    public var layers: Int
    /// `num_attention_heads`.
    public var heads: Int
    /// `intermediate_size`: the width of the feed-forward layer.
    public var intermediateSize: Int
    /// `max_position_embeddings`: rows of the position table.
    public var maxPositionEmbeddings: Int
    /// `type_vocab_size`: rows of the token-type table (default 2).
    public var typeVocabularySize: Int
    /// `layer_norm_eps` (default 1e-12).
    public var layerNormEpsilon: Double
    /// `hidden_act` (default "gelu"); only "gelu", the exact erf form, is supported.
    public var hiddenAct: String

    public init(vocabularySize: Int, hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int,
                maxPositionEmbeddings: Int, typeVocabularySize: Int = 2, layerNormEpsilon: Double = 1e-12,
                hiddenAct: String = "gelu") {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.heads = heads
        self.intermediateSize = intermediateSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabularySize = typeVocabularySize
        self.layerNormEpsilon = layerNormEpsilon
        self.hiddenAct = hiddenAct
    }

    /// Reads and checks `config.json`. The six sizes are required; `type_vocab_size`,
    /// `layer_norm_eps` and `hidden_act` take Hugging Face's `BertConfig` defaults when absent.
    /// `model_type`, when present, must be "bert" and `position_embedding_type` "absolute" (other
    /// models with BERT's tensor names place positions differently).
    public static func read(_ path: String) throws(MulanError) -> BertConfig {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw MulanError(.data, "\(path) is not readable JSON", cause: error)
        }
        guard let json = object as? [String: Any] else { throw MulanError(.data, "\(path) is not a JSON object") }

        func integer(_ key: String, default value: Int? = nil) throws(MulanError) -> Int {
            guard let raw = json[key] else {
                if let value { return value }
                throw MulanError(.data, "\(path) lacks \(key)", hint: "a Hugging Face BERT config.json gives it")
            }
            guard let number = raw as? NSNumber, let n = Int(exactly: number.doubleValue), n >= 1 else {
                throw MulanError(.data, "\(path): \(key) is \(raw), not a positive integer")
            }
            return n
        }
        func string(_ key: String, default value: String) throws(MulanError) -> String {
            guard let raw = json[key] else { return value }
            guard let s = raw as? String else { throw MulanError(.data, "\(path): \(key) is \(raw), not a string") }
            return s
        }

        if let type = json["model_type"] {
            guard let t = type as? String, t == "bert" else {
                throw MulanError(.data, "\(path): model_type is \(type), not bert",
                                 hint: "only BERT checkpoints (BertModel, e.g. all-MiniLM-L6-v2) load into the text tower")
            }
        }
        let positions = try string("position_embedding_type", default: "absolute")
        guard positions == "absolute" else {
            throw MulanError(.data, "\(path): position_embedding_type \(positions) is not supported (only absolute)")
        }
        var eps = 1e-12
        if let raw = json["layer_norm_eps"] {
            guard let number = raw as? NSNumber, number.doubleValue > 0, number.doubleValue.isFinite else {
                throw MulanError(.data, "\(path): layer_norm_eps is \(raw), not a positive number")
            }
            eps = number.doubleValue
        }
        let config = BertConfig(vocabularySize: try integer("vocab_size"), hiddenSize: try integer("hidden_size"),
                                layers: try integer("num_hidden_layers"), heads: try integer("num_attention_heads"),
                                intermediateSize: try integer("intermediate_size"),
                                maxPositionEmbeddings: try integer("max_position_embeddings"),
                                typeVocabularySize: try integer("type_vocab_size", default: 2),
                                layerNormEpsilon: eps, hiddenAct: try string("hidden_act", default: "gelu"))
        guard config.hiddenAct == "gelu" else {
            throw MulanError(.data, "\(path): hidden_act \"\(config.hiddenAct)\" is not supported",
                             hint: "the text tower's GELU is the exact erf form, hidden_act \"gelu\"")
        }
        guard config.hiddenSize % config.heads == 0 else {
            throw MulanError(.data, "\(path): hidden_size \(config.hiddenSize) is not a multiple of "
                             + "num_attention_heads \(config.heads)")
        }
        return config
    }
}

/// Loads a Hugging Face BERT checkpoint folder into a `TextTower`.
///
/// The folder holds `config.json`, `model.safetensors` (a `BertModel`, or a model whose encoder is
/// under `bert.`, e.g. `BertForMaskedLM`) and `vocab.txt`. Tensors are matched by name, with or
/// without the `bert.` prefix; everything else in the file (the pooler, heads, the `position_ids`
/// buffer) is ignored. Every tensor must have the shape `config.json` implies.
///
/// - The position table is cut to the tower's `maxLength` rows (its first rows: position i keeps
///   its embedding), so a tower for 128 tokens loads from a 512-position checkpoint; `maxLength`
///   may not exceed `max_position_embeddings`.
/// - Token-type row 0 is the only one the tower uses; rows 0 and 1 are copied (row 1 stays 0 when
///   `type_vocab_size` is 1).
/// - `projection` (hidden size → `embeddingDim`) is not in BERT checkpoints: it stays freshly
///   initialized from `random`.
/// - Checkpoint dtypes F32, F16 and BF16 are read into Float.
///
/// Tokenize with `BertTokenizer` on the folder's `vocab.txt` (`Loaded.vocabulary`), whose size must
/// equal the checkpoint's word embeddings, and batch with `TokenBatch` (which adds [CLS] and [SEP]).
public enum PretrainedText {
    public static let configFile = "config.json"
    public static let weightsFile = "model.safetensors"
    public static let vocabularyFile = "vocab.txt"

    public struct Loaded {
        /// The tower, its encoder holding the checkpoint's weights.
        public var tower: TextTower
        /// What config.json says.
        public var bert: BertConfig
        /// The folder's vocab.txt, loaded (for `BertTokenizer`).
        public var vocabulary: WordPieceVocabulary
        public var vocabularyPath: String
        /// The folder's model.safetensors.
        public var weightsPath: String
        /// The prefix the checkpoint's tensor names carry: "" or "bert.".
        public var namePrefix: String
    }

    /// Loads `directory` (see the type's documentation) into a tower for sequences of up to
    /// `maxLength` tokens ([CLS] and [SEP] included) with the given pooling and output size.
    public static func load(directory: String, maxLength: Int, embeddingDim: Int = 128, pooling: TextPooling = .mean,
                            random: inout RandomSource) throws(MulanError) -> Loaded {
        let dir = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        let configPath = dir + "/" + configFile, weightsPath = dir + "/" + weightsFile
        let vocabularyPath = dir + "/" + vocabularyFile
        for path in [configPath, weightsPath, vocabularyPath] where !FileManager.default.isReadableFile(atPath: path) {
            throw MulanError(.io, "pretrained text model \(dir) has no readable \((path as NSString).lastPathComponent)",
                             hint: "a Hugging Face BERT folder holds config.json, model.safetensors and vocab.txt")
        }
        let bert = try BertConfig.read(configPath)
        guard maxLength >= 2 else {
            throw MulanError(.usage, "maxLength \(maxLength) cannot hold [CLS] and [SEP]")
        }
        guard maxLength <= bert.maxPositionEmbeddings else {
            throw MulanError(.usage, "maxLength \(maxLength) exceeds the \(bert.maxPositionEmbeddings) positions of \(configPath)")
        }
        guard embeddingDim >= 1 else { throw MulanError(.usage, "embeddingDim \(embeddingDim) must be at least 1") }

        let config = TextTowerConfig(vocabularySize: bert.vocabularySize, width: bert.hiddenSize, layers: bert.layers,
                                     heads: bert.heads, feedForward: bert.intermediateSize, maxLength: maxLength,
                                     embeddingDim: embeddingDim, layerNormEpsilon: Float(bert.layerNormEpsilon),
                                     pooling: pooling)
        let tower = TextTower(config, random: &random)
        let wanted = tower.namedParameters.filter { !$0.name.hasPrefix("projection.") }
        let wantedNames = Set(wanted.map(\.name))

        let tensors: [String: Tensor]
        do {
            tensors = try SafeTensors.read(weightsPath) { name in
                wantedNames.contains(name) || (name.hasPrefix("bert.") && wantedNames.contains(String(name.dropFirst(5))))
            }.tensors
        } catch {
            throw MulanError(.data, "cannot read checkpoint \(weightsPath)", cause: error)
        }
        let prefix = tensors["embeddings.word_embeddings.weight"] == nil && tensors["bert.embeddings.word_embeddings.weight"] != nil
            ? "bert." : ""

        let h = bert.hiddenSize
        for (name, parameter) in wanted {
            let fileName = prefix + name
            var expected = parameter.value.shape
            if name == "embeddings.position_embeddings.weight" { expected = [bert.maxPositionEmbeddings, h] }
            if name == "embeddings.token_type_embeddings.weight" { expected = [bert.typeVocabularySize, h] }
            guard let t = tensors[fileName] else {
                throw MulanError(.data, "checkpoint \(weightsPath) has no tensor \(fileName)",
                                 hint: "expected a Hugging Face BertModel (names with or without the bert. prefix)")
            }
            guard t.shape == expected else {
                throw MulanError(.data, "checkpoint \(weightsPath): tensor \(fileName) has shape \(t.shape), "
                                 + "config.json says \(expected)")
            }
            let rows = parameter.value.shape[0]
            if t.shape == parameter.value.shape {
                parameter.value = t
            } else {
                // The position table cut to maxLength rows, or the token-type table fit to 2 rows.
                var v = Tensor(shape: parameter.value.shape)
                let n = min(rows, t.shape[0]) * h
                for i in 0..<n { v.storage[i] = t.storage[i] }
                parameter.value = v
            }
        }

        let vocabulary = try WordPieceVocabulary(path: vocabularyPath)
        guard vocabulary.tokens.count == bert.vocabularySize else {
            throw MulanError(.data, "\(vocabularyPath) has \(vocabulary.tokens.count) tokens but the word embeddings of "
                             + "\(weightsPath) have \(bert.vocabularySize) rows",
                             hint: "use the vocab.txt that was trained with this checkpoint")
        }
        return Loaded(tower: tower, bert: bert, vocabulary: vocabulary, vocabularyPath: vocabularyPath,
                      weightsPath: weightsPath, namePrefix: prefix)
    }
}
