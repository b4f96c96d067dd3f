import GPT
import Planner
import Recipe

extension GPTConfig {
    /// The model a recipe's `[model]` describes.
    public init(_ recipe: Recipe) {
        let m = recipe.model
        self.init(nLayer: m.nLayer, nHead: m.nHead, dModel: m.dModel, dFF: m.dFF, seqLen: m.seqLen,
                  vocabSize: m.vocabSize, bias: m.bias, dropout: Float(m.dropout))
    }

    /// The same model in the planner's terms, for counting parameters and FLOPs.
    public var shape: ModelShape {
        ModelShape(nLayer: nLayer, nHead: nHead, dModel: dModel, dFF: dFF, seqLen: seqLen, vocabSize: vocabSize, bias: bias)
    }
}
