"""The floor for a Hydra command line: a bare `@hydra.main` app over one config file (a snapshot
of cvexp's default composed config), importing nothing but Hydra.

    python benchmarks/bare_hydra_app/app.py --help
    python benchmarks/bare_hydra_app/app.py --cfg job
"""

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    print(OmegaConf.to_yaml(cfg))


if __name__ == "__main__":
    main()
