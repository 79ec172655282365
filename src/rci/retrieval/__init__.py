"""Retrieval: the Milvus vector store that finds each new video's most similar earlier video."""
