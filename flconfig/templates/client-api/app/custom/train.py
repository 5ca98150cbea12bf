"""A training script written against FLARE's Client API, as FLARE's examples write them.

It knows nothing of flconfig: it imports nvflare.client, receives the global model,
validates it, trains on this site's share of scikit-learn's digits and sends the
result back, logging its loss and accuracy with FLARE's SummaryWriter.
"""

import argparse

import numpy as np

# (1) import nvflare client API
import nvflare.client as flare
import torch
from net import Net
from nvflare.client.tracking import SummaryWriter
from sklearn.datasets import load_digits
from torch import nn


def site_data(site_name, num_sites):
    """This site's share of the digits (split by site number) and the common test set."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    test, train = order[:360], order[360:]
    index = int(site_name.rsplit("-", 1)[-1]) - 1
    mine = train[index % num_sites::num_sites]
    as_tensors = lambda idx: (torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]))  # noqa: E731
    return as_tensors(mine), as_tensors(test)


def evaluate(net, test):
    net.eval()
    with torch.no_grad():
        predicted = net(test[0]).argmax(1)
    return float((predicted == test[1]).float().mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-sites", type=int, default=2)
    args = parser.parse_args()

    # (2) initializes NVFlare client API
    flare.init()
    site = flare.get_site_name()
    torch.manual_seed(int(site.rsplit("-", 1)[-1]))
    (x, y), test = site_data(site, args.num_sites)
    net = Net()
    writer = SummaryWriter()

    while flare.is_running():
        # (3) receives FLModel from NVFlare
        input_model = flare.receive()
        print(f"[round {input_model.current_round}, {site}] training on {len(y)} images")

        # (4) loads the global model and validates it (for model selection)
        net.load_state_dict(input_model.params)
        accuracy = evaluate(net, test)

        optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()
        steps_per_epoch = (len(y) + args.batch_size - 1) // args.batch_size
        step = input_model.current_round * args.epochs * steps_per_epoch
        for _ in range(args.epochs):
            net.train()
            for start in range(0, len(y), args.batch_size):
                optimizer.zero_grad()
                loss = loss_fn(net(x[start:start + args.batch_size]), y[start:start + args.batch_size])
                loss.backward()
                optimizer.step()
                writer.add_scalar("train_loss", loss.item(), step)
                step += 1
        writer.add_scalar("global_model_accuracy", accuracy, input_model.current_round)

        # (5) sends the trained weights back, with the received model's accuracy
        flare.send(flare.FLModel(
            params=net.state_dict(),
            metrics={"accuracy": accuracy},
            meta={"NUM_STEPS_CURRENT_ROUND": args.epochs * steps_per_epoch},
        ))


if __name__ == "__main__":
    main()
