import ArgumentParser
import Foundation
import MulanCore
import MulanTraining

/// `mulan-train`: the bundled two-tower contrastive trainer.
public struct TrainCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mulan-train",
        abstract: "Train and evaluate a two-tower (audio/text) contrastive model on mulan shards.")

    public init() {}
}
