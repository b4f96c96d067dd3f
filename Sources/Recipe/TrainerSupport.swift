import GPTShape

extension Recipe {
    /// Why gpt-train (the CPU trainer) cannot train this recipe's model, or nil when it can: it builds GPT-2
    /// blocks with a tied head only, until Llama-style training lands (issue "Llama-style models in the trainer").
    /// gpt-plan plans, counts and checks both families; this is the one check that keeps a Llama-style recipe from
    /// being trained as something else.
    public var cpuTrainerRefusal: String? {
        let m = model
        if m.family == .llama {
            return "model.family = \"llama\": gpt-train trains the gpt2 family only, until Llama-style training lands "
                + "(RMSNorm, rotary positions, SwiGLU and grouped-query attention are planned and counted by gpt-plan, "
                + "not yet trained here). Fix: set model.family = \"gpt2\" (and n_kv_head = n_head, tie_embeddings = "
                + "true), or train this recipe with a GPU framework (gpt-plan estimate shows its memory and step time)"
        }
        if m.normEps != 1e-5 {
            return "model.norm_eps = \(m.normEps): gpt-train's GPT-2 LayerNorm uses ε = 1e-5. Fix: set model.norm_eps = 1e-5"
        }
        if !m.tieEmbeddings {
            return "model.tie_embeddings = false: gpt-train's GPT-2 model ties the output head to the token embedding. "
                + "Fix: set model.tie_embeddings = true"
        }
        return nil
    }
}
