/**
 * Reading and writing what a BERT model needs from disk, in Hugging Face's formats.
 *
 * <ul>
 *   <li>{@link org.bertj.io.SafetensorsReader} / {@link org.bertj.io.SafetensorsWriter}: weights
 *       ({@code model.safetensors}), memory-mapped, validated, written atomically;
 *   <li>{@link org.bertj.io.BertConfig}: {@code config.json};
 *   <li>{@link org.bertj.io.BertTokenizer}: {@code tokenizer.json}, giving {@link
 *       org.bertj.io.Encoding} / {@link org.bertj.io.EncodingBatch};
 *   <li>{@link org.bertj.io.Dataset}: TSV, CSV, JSON Lines;
 *   <li>{@link org.bertj.io.MiniLmConverter}: the bundled all-MiniLM-L6-v2 ONNX model as a checkpoint
 *       folder.
 * </ul>
 *
 * <p>A malformed checkpoint file is a {@link org.bertj.io.CheckpointException}, a malformed dataset a
 * {@link org.bertj.io.DatasetException}; both name the file and the tensor, field or line at fault.
 */
package org.bertj.io;
