/**
 * The library API: {@link org.bertj.SentenceEncoder} (sentence embeddings) and
 * {@link org.bertj.TextClassifier} (predictions of a fine-tuned classifier), both loading a Hugging
 * Face BERT folder and both {@link java.lang.AutoCloseable}. The layers below are
 * {@code org.bertj.model} (BERT itself), {@code org.bertj.io} (checkpoints, tokenizer, datasets) and
 * {@code org.bertj.backend} (CPU and CUDA kernels).
 */
package org.bertj;
