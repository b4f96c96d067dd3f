import Checkpoint
import GPT
import Planner
import Recipe

extension ParameterLayout {
    /// Every tensor, named and shaped as checkpoints store it.
    public var checkpointTensors: [CheckpointTensor] {
        tensors.map { CheckpointTensor(name: $0.name, shape: $0.shape, offset: $0.offset) }
    }
}

extension CheckpointReader {
    /// A checkpoint's recipe, read back (its budget is not checked again: it passed when the run started).
    public static func parseRecipe(_ text: String, of path: String) throws -> Recipe {
        let check = RecipeLoader.check(text: text, file: "\(path) (its /recipe)", tolerance: .infinity)
        guard let recipe = check.recipe else {
            throw CheckpointError(file: path, reason: "its recipe does not read back: "
                                  + check.errors.map(\.description).joined(separator: "; "))
        }
        return recipe
    }
}

extension GPTConfig {
    /// The model a recipe's `[model]` describes.
    public init(_ recipe: Recipe) {
        let m = recipe.model
        self.init(nLayer: m.nLayer, nHead: m.nHead, dModel: m.dModel, dFF: m.dFF, seqLen: m.seqLen,
                  vocabSize: m.vocabSize, bias: m.bias, dropout: Float(recipe.training.dropout))
    }

    /// The same model in the planner's terms, for counting parameters and FLOPs.
    public var shape: ModelShape {
        ModelShape(nLayer: nLayer, nHead: nHead, dModel: dModel, dFF: dFF, seqLen: seqLen, vocabSize: vocabSize, bias: bias)
    }
}
