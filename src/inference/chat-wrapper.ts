import {
  type ChatWrapper,
  JinjaTemplateChatWrapper,
  type LlamaModel,
  resolveChatWrapper,
} from "node-llama-cpp";

/**
 * The model's own chat template, made to start with BOS. TinyLlama-Chat's template does not render
 * `bos_token`, and LlamaChat never adds one, so without this the model would see no BOS at all.
 */
export function createChatWrapper(model: LlamaModel): { wrapper: ChatWrapper; source: string } {
  const template = model.fileInfo.metadata.tokenizer?.chat_template;
  if (typeof template === "string" && template.length > 0) {
    const withBos = template.includes("bos_token") ? template : `{{ bos_token }}${template}`;
    return {
      wrapper: new JinjaTemplateChatWrapper({ template: withBos, tokenizer: model.tokenizer }),
      source: withBos === template ? "GGUF chat template" : "GGUF chat template, with BOS added",
    };
  }
  return {
    wrapper: resolveChatWrapper(model),
    source: "node-llama-cpp's wrapper for this model (no template in the GGUF)",
  };
}
