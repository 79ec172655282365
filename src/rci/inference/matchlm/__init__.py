"""MatchLM, the teacher (paper 3.2, A.2): LLaVA-OneVision (SigLIP + Qwen2) with audio, LoRA-tuned.

    teacher = load_matchlm("models/matchlm")                 # local dir, no hub
    result = teacher.score_pair(query, candidate)             # VideoInput x 2 -> TeacherScore

Modules: config (hyper-parameters), frames (dynamic frame allocation, pixel preprocessing),
audio (saliency pooling, projector), prompt (the two-video prompt and its placeholders),
processor (VideoInput pairs -> tensors), model (the nn.Module), teacher (scoring wrapper),
tiny (CPU-sized model built from scratch), loader (file I/O: load and save), saving (what training
adds to a saved directory: trained base weights, meta updates, in the loader's layout).
"""
