"""Pure: inventory + facts -> a Plan of frozen steps, or a refusal listing every reason. Nothing here does I/O."""
