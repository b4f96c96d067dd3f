import Checkpoint
import GPT
import Recipe

// How a checkpoint file's contents (named tensors, a recipe's text) map onto the model and the recipe: the Checkpoint
// module knows neither.

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
